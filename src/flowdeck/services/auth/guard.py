"""Research-group isolation and management rights, as plain functions.

The rules every endpoint applies:

- **Reading or acting on an object** of group G: allowed to members of G,
  service admins and the local user (auth mode ``none``). Anyone else gets the
  very :class:`NotFound` a missing object gets (:func:`not_found`), never a
  :class:`Forbidden`: a 403 would confirm the object exists.
- **Lists and counts** filter on ``principal.visible_groups()`` (``None``:
  no filter) in the query itself, so nothing else leaks through totals.
- **Creating an object**: :func:`group_for_new_object` picks its group. Naming
  a group the caller is not in is a 403: the caller chose the name, and the
  answer is the same whether or not that group exists, so it reveals nothing;
  a 404 would wrongly say "no such group", a 422 would say the input is bad
  for everyone.
- **Managing** users, groups and other people's tokens: service admins. Group
  admins manage the memberships of their own groups. Everyone manages their
  own API tokens. Management objects outside the caller's sight are 404 too.
"""

from __future__ import annotations

from collections.abc import Collection

from flowdeck.db.accounts import normalize_group_name
from flowdeck.domain.principal import Principal
from flowdeck.errors import Forbidden, NotFound, Problem, ValidationFailed


def not_found(kind: str, ident: str) -> NotFound:
    """The one error for "missing" and "not yours": same text, same status."""
    return NotFound(f"{kind} '{ident}' not found")


def ensure_visible(principal: Principal, group: str | None, kind: str, ident: str) -> None:
    """Raise :func:`not_found` unless the caller may see an object of ``group``."""
    if not principal.can_see(group):
        raise not_found(kind, ident)


def group_for_new_object(principal: Principal, requested: str | None) -> str | None:
    """The canonical research group a new run, dataset or request is filed under.

    Without ``requested``: the caller's only group; ``None`` (ungrouped, seen by
    admins only) for admins and the local user in no or several groups.
    """
    if requested is not None:
        group = normalize_group_name(requested)
        if principal.sees_all or group in principal.groups:
            return group
        raise Forbidden(f"you are not a member of research group '{group}'")
    if len(principal.groups) == 1:
        return next(iter(principal.groups))
    if principal.sees_all:
        return None
    if not principal.groups:
        raise Forbidden("you belong to no research group yet; ask an administrator to add you to one")
    names = ", ".join(sorted(principal.groups))
    raise ValidationFailed(
        "research_group is required: you belong to several research groups",
        [Problem("/research_group", f"name one of: {names}", "required")],
    )


def can_use_pipeline(principal: Principal, allowed_groups: Collection[str] | None) -> bool:
    """True when the pipeline is open to all (no list) or to one of the caller's groups."""
    if not allowed_groups or principal.sees_all:
        return True
    return not set(principal.groups).isdisjoint(allowed_groups)


def ensure_pipeline_usable(principal: Principal, allowed_groups: Collection[str] | None, name: str) -> None:
    """A pipeline limited to other groups looks missing."""
    if not can_use_pipeline(principal, allowed_groups):
        raise not_found("pipeline", name)


def require_service_admin(principal: Principal, action: str) -> None:
    """Forbidden unless a service admin (or the local user) asks."""
    if not principal.sees_all:
        raise Forbidden(f"only service administrators may {action}")


def require_group_admin(principal: Principal, group: str) -> None:
    """For managing a group's memberships: NotFound outside it, Forbidden for plain members."""
    if not principal.can_see(group):
        raise not_found("research group", group)
    if not principal.is_group_admin(group):
        raise Forbidden(f"only administrators of research group '{group}' may manage its members")


def require_self_or_admin(principal: Principal, username: str, kind: str = "user") -> None:
    """For someone's tokens or profile: theirs, or a service admin's; others see a 404."""
    if principal.name != username and not principal.sees_all:
        raise not_found(kind, username)


def visible_groups(principal: Principal) -> frozenset[str] | None:
    """The group filter for lists and counts; ``None`` means no filter."""
    return principal.visible_groups()
