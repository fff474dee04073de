"""The call-cache key: equal material, equal key, however it is ordered or where inputs lay;
any change to what a result depends on, another key."""

from __future__ import annotations

from dataclasses import replace

from flowdeck.domain.call_cache import Material, key, with_digests

BASE = Material(
    workflow_type="CWL",
    workflow_type_version="v1.2",
    workflow_url="head.cwl",
    attachments={"head.cwl": "sha256:aa", "tool.cwl": "sha256:bb"},
    params={"bytes": 8, "text": {"sha256": "sha256:cc"}},
    engine_parameters={},
    target={},
    dataset_checksum=None,
    engine="cwltool",
    engine_version="3.1",
)


def test_order_of_keys_does_not_matter() -> None:
    reordered = replace(
        BASE,
        attachments={"tool.cwl": "sha256:bb", "head.cwl": "sha256:aa"},
        params={"text": {"sha256": "sha256:cc"}, "bytes": 8},
    )
    assert key(reordered) == key(BASE)


def test_every_part_changes_the_key() -> None:
    changed = [
        replace(BASE, attachments={"head.cwl": "sha256:ab", "tool.cwl": "sha256:bb"}),
        replace(BASE, params={"bytes": 9, "text": {"sha256": "sha256:cc"}}),
        replace(BASE, engine_version="3.2"),
        replace(BASE, engine="toil"),
        replace(BASE, dataset_checksum="sha256:dd"),
        replace(BASE, engine_parameters={"parallel": "true"}),
        replace(BASE, workflow_url="tool.cwl"),
    ]
    assert len({key(m) for m in changed} | {key(BASE)}) == len(changed) + 1


def test_inputs_are_keyed_by_content_not_by_path() -> None:
    at = ("text", "location")
    one = with_digests({"text": {"class": "File", "location": "file:///a/x.txt"}}, {at: "sha256:cc"})
    two = with_digests({"text": {"class": "File", "location": "file:///b/y.txt"}}, {at: "sha256:cc"})
    assert one == two == {"text": {"class": "File", "location": {"sha256": "sha256:cc"}}}
    listed = with_digests({"reads": ["s3://a", "s3://b"]}, {("reads", 1): "sha256:ee"})
    assert listed == {"reads": ["s3://a", {"sha256": "sha256:ee"}]}
