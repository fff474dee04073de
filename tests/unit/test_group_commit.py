"""services.group_commit: batching, each caller's own outcome, cancellation."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from flowdeck.services.core.group_commit import GroupCommit


class RowError(Exception):
    """Stands for a constraint one row breaks."""


class Store:
    """A write function that records its batches; items named 'bad' break a constraint."""

    def __init__(self, fail_with: Exception | None = None) -> None:
        self.batches: list[list[str]] = []
        self.committed: list[str] = []
        self.fail_with = fail_with
        self.gate: asyncio.Event | None = None

    async def write(self, items: Sequence[str]) -> None:
        self.batches.append(list(items))
        if self.gate is not None:
            await self.gate.wait()
        if self.fail_with is not None:
            raise self.fail_with
        if "bad" in items:
            raise RowError("bad row")
        self.committed.extend(items)


async def test_submissions_of_the_same_moment_share_one_write() -> None:
    store = Store()
    commit = GroupCommit(store.write)
    await asyncio.gather(*(commit.submit(f"run{i}") for i in range(16)))
    assert store.batches == [[f"run{i}" for i in range(16)]]
    assert store.committed == [f"run{i}" for i in range(16)]


async def test_a_lone_submission_is_written_at_once_and_later_ones_in_later_writes() -> None:
    store = Store()
    commit = GroupCommit(store.write)
    await commit.submit("a")
    await commit.submit("b")
    assert store.batches == [["a"], ["b"]]


async def test_items_arriving_during_a_write_go_in_the_next_one() -> None:
    store = Store()
    store.gate = asyncio.Event()
    commit = GroupCommit(store.write)
    first = asyncio.ensure_future(commit.submit("first"))
    await asyncio.sleep(0.01)  # the first write is under way, held by the gate
    later = [asyncio.ensure_future(commit.submit(name)) for name in ("x", "y")]
    await asyncio.sleep(0.01)
    assert not first.done()
    assert not any(f.done() for f in later)
    store.gate.set()
    await asyncio.gather(first, *later)
    assert store.batches == [["first"], ["x", "y"]]


async def test_an_isolated_error_fails_only_its_own_item() -> None:
    store = Store()
    commit = GroupCommit(store.write, isolate=(RowError,))
    results = await asyncio.gather(*(commit.submit(name) for name in ("a", "bad", "c")), return_exceptions=True)
    assert results[0] is None
    assert results[2] is None
    assert isinstance(results[1], RowError)
    assert store.committed == ["a", "c"]
    assert store.batches == [["a", "bad", "c"], ["a"], ["bad"], ["c"]]


async def test_any_other_error_fails_the_whole_batch_without_retrying_it() -> None:
    store = Store(fail_with=OSError("database is locked"))
    commit = GroupCommit(store.write, isolate=(RowError,))
    results = await asyncio.gather(*(commit.submit(name) for name in ("a", "b")), return_exceptions=True)
    assert [type(r) for r in results] == [OSError, OSError]
    assert store.batches == [["a", "b"]]


async def test_a_cancelled_caller_still_has_its_item_written() -> None:
    store = Store()
    store.gate = asyncio.Event()
    commit = GroupCommit(store.write)
    waiting = asyncio.ensure_future(commit.submit("gone"))
    await asyncio.sleep(0.01)
    waiting.cancel()
    store.gate.set()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    await commit.submit("next")  # the committer carried on
    assert store.committed == ["gone", "next"]


async def test_a_flush_cancelled_mid_write_fails_its_waiters_instead_of_leaving_them_hanging() -> None:
    store = Store()
    store.gate = asyncio.Event()
    commit = GroupCommit(store.write)
    waiting = asyncio.ensure_future(commit.submit("a"))
    await asyncio.sleep(0.01)
    flusher = commit._flusher
    assert flusher is not None
    flusher.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(waiting, 1)


def test_one_committer_serves_event_loops_one_after_another() -> None:
    store = Store()
    commit = GroupCommit(store.write)
    asyncio.run(commit.submit("first loop"))
    asyncio.run(commit.submit("second loop"))
    assert store.committed == ["first loop", "second loop"]
