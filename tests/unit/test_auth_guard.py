"""Isolation rules: another group's object is a 404, creation picks a group, management rights."""

from __future__ import annotations

import pytest

from flowdeck.domain.principal import LOCAL_USER, Principal
from flowdeck.errors import Forbidden, InvalidInput, NotFound, ValidationFailed
from flowdeck.services.auth import guard

MEMBER = Principal(name="ann", groups={"lab-a": "member"}, via="basic")
GROUP_ADMIN = Principal(name="gus", groups={"lab-a": "admin", "lab-b": "member"}, via="basic")
OUTSIDER = Principal(name="otto", groups={"lab-c": "member"}, via="basic")
LONER = Principal(name="lou", via="basic")
ADMIN = Principal(name="root", is_admin=True, via="basic")


@pytest.mark.parametrize(
    ("principal", "group", "visible"),
    [
        (MEMBER, "lab-a", True),
        (MEMBER, "lab-b", False),
        (MEMBER, None, False),
        (OUTSIDER, "lab-a", False),
        (ADMIN, "lab-a", True),
        (ADMIN, None, True),
        (LOCAL_USER, "anything", True),
    ],
)
def test_visibility_is_a_404_identical_to_a_missing_object(
    principal: Principal, group: str | None, visible: bool
) -> None:
    if visible:
        guard.ensure_visible(principal, group, "run", "r1")
        return
    with pytest.raises(NotFound) as caught:
        guard.ensure_visible(principal, group, "run", "r1")
    assert str(caught.value) == str(guard.not_found("run", "r1"))
    assert group is None or group not in caught.value.detail


def test_group_for_new_object() -> None:
    assert guard.group_for_new_object(MEMBER, None) == "lab-a"
    assert guard.group_for_new_object(MEMBER, "LAB-A") == "lab-a"
    assert guard.group_for_new_object(ADMIN, None) is None
    assert guard.group_for_new_object(ADMIN, "Any_Lab") == "any_lab"
    assert guard.group_for_new_object(LOCAL_USER, "cancer_genomics_lab") == "cancer_genomics_lab"
    assert guard.group_for_new_object(LOCAL_USER, None) is None


def test_naming_a_foreign_group_is_forbidden_whether_or_not_it_exists() -> None:
    with pytest.raises(Forbidden) as existing:
        guard.group_for_new_object(MEMBER, "lab-c")
    with pytest.raises(Forbidden) as missing:
        guard.group_for_new_object(MEMBER, "no-such-lab")
    assert existing.value.detail.replace("lab-c", "X") == missing.value.detail.replace("no-such-lab", "X")


def test_several_groups_need_a_choice_and_none_refuses() -> None:
    with pytest.raises(ValidationFailed) as caught:
        guard.group_for_new_object(GROUP_ADMIN, None)
    assert caught.value.problems[0].pointer == "/research_group"
    with pytest.raises(Forbidden, match="no research group"):
        guard.group_for_new_object(LONER, None)
    with pytest.raises(InvalidInput):
        guard.group_for_new_object(MEMBER, "lab a")


def test_pipelines_limited_to_groups() -> None:
    assert guard.can_use_pipeline(MEMBER, None)
    assert guard.can_use_pipeline(MEMBER, ["lab-a", "lab-z"])
    assert guard.can_use_pipeline(ADMIN, ["lab-z"])
    with pytest.raises(NotFound):
        guard.ensure_pipeline_usable(OUTSIDER, ["lab-a"], "gatk")


def test_management_rights() -> None:
    guard.require_service_admin(ADMIN, "create users")
    guard.require_service_admin(LOCAL_USER, "create users")
    with pytest.raises(Forbidden, match="create users"):
        guard.require_service_admin(GROUP_ADMIN, "create users")

    guard.require_group_admin(GROUP_ADMIN, "lab-a")
    guard.require_group_admin(ADMIN, "lab-c")
    with pytest.raises(Forbidden):
        guard.require_group_admin(GROUP_ADMIN, "lab-b")  # a plain member there: it exists for them
    with pytest.raises(NotFound):
        guard.require_group_admin(GROUP_ADMIN, "lab-c")  # not theirs: it does not exist for them

    guard.require_self_or_admin(MEMBER, "ann")
    guard.require_self_or_admin(ADMIN, "ann")
    with pytest.raises(NotFound):
        guard.require_self_or_admin(OUTSIDER, "ann")


def test_visible_groups_filter() -> None:
    assert guard.visible_groups(MEMBER) == frozenset({"lab-a"})
    assert guard.visible_groups(LONER) == frozenset()
    assert guard.visible_groups(ADMIN) is None
