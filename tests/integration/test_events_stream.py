"""GET /events against real ``flowdeck api`` and ``flowdeck worker`` processes: a client follows
a run from submit to completion, resumes with Last-Event-ID, sees only its own groups' events,
and on PostgreSQL two API processes both stream what a worker in a third process did."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from flowdeck.services.core.context import AppContext
from flowdeck.settings import Settings
from tests.support.basic_app import add_user, basic
from tests.support.network import free_port

WES = "/ga4gh/wes/v1"
FORM = {"workflow_type": "DEMO", "workflow_type_version": "1.0", "workflow_url": "demo://events"}


def _env(settings: Settings, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWDECK_")}
    env.update(
        {
            "FLOWDECK_DATA_DIR": str(settings.data_dir),
            "FLOWDECK_DATABASE_URL": settings.resolved_database_url,
            "FLOWDECK_BACKENDS": "demo",
            "FLOWDECK_WORKER_POLL_SECONDS": "0.1",
            "FLOWDECK_SYNC_MIN_SECONDS": "0.1",
            "FLOWDECK_DEMO_MIN_SECONDS": "0.5",
            "FLOWDECK_DEMO_MAX_SECONDS": "0.5",
            "FLOWDECK_DEMO_SUCCESS_RATE": "1",
            "FLOWDECK_EVENTS_HEARTBEAT_SECONDS": "0.5",
            "FLOWDECK_EVENTS_POLL_SECONDS": "0.2",
            **extra,
        }
    )
    return env


def _start(tmp_path: Path, env: dict[str, str], name: str, *argv: str) -> subprocess.Popen[str]:
    log = (tmp_path / f"{name}.log").open("w")
    return subprocess.Popen(
        [sys.executable, "-m", "flowdeck.cli.main", *argv],
        env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


@contextmanager
def _processes(tmp_path: Path, env: dict[str, str], apis: int = 1) -> Iterator[list[str]]:
    """``apis`` flowdeck api processes and one flowdeck worker; yields the APIs' URLs."""
    procs, urls = [], []
    try:
        for n in range(apis):
            port = free_port()
            procs.append(_start(tmp_path, env, f"api{n}", "api", "--port", str(port)))
            urls.append(f"http://127.0.0.1:{port}")
        procs.append(_start(tmp_path, env, "worker", "worker"))
        deadline = time.monotonic() + 60
        for n, url in enumerate(urls):
            while True:
                assert procs[n].poll() is None, (tmp_path / f"api{n}.log").read_text()
                assert time.monotonic() < deadline, "the API did not start"
                try:
                    httpx.get(f"{url}/healthz", timeout=2)
                    break
                except httpx.TransportError:
                    time.sleep(0.2)
        yield urls
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGINT)
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


class Stream:
    """A GET /events response read as server-sent events."""

    def __init__(self, response: httpx.Response) -> None:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        self._lines = response.iter_lines()
        assert next(self._lines).startswith(":")  # the stream is open: what commits now is seen

    def next(self) -> dict[str, Any] | None:
        """The next event, or None for a heartbeat."""
        fields: dict[str, str] = {}
        for line in self._lines:
            if line.startswith(":"):
                return None
            if not line and not fields:
                continue  # the blank line after a comment
            if not line:
                assert json.loads(fields["data"])["id"] == int(fields["id"])
                data: dict[str, Any] = json.loads(fields["data"])
                return data
            key, _, value = line.partition(": ")
            fields[key] = value
        raise AssertionError("the stream ended")

    def until_done(self, run_id: str, limit: float = 60) -> list[dict[str, Any]]:
        """This run's events until it reaches COMPLETE."""
        seen: list[dict[str, Any]] = []
        deadline = time.monotonic() + limit
        while not seen or seen[-1]["to_state"] != "COMPLETE":
            assert time.monotonic() < deadline, seen
            event = self.next()
            if event is not None and event["run_id"] == run_id:
                seen.append(event)
        return seen


def _in_order(events: list[dict[str, Any]]) -> None:
    """Every state from QUEUED to COMPLETE, each change following the one before."""
    assert events[0]["to_state"] == "QUEUED", events
    assert events[-1]["to_state"] == "COMPLETE", events
    for before, after in itertools.pairwise(events):
        assert after["from_state"] == before["to_state"], events
        assert after["id"] > before["id"], events


def test_a_client_follows_a_run_then_resumes_missing_nothing(db_settings: Settings, tmp_path: Path) -> None:
    with _processes(tmp_path, _env(db_settings)) as [url], httpx.Client(base_url=url, timeout=30) as http:
        with http.stream("GET", "/events") as response:
            stream = Stream(response)
            run_id = http.post(f"{WES}/runs", data=FORM).json()["run_id"]
            live = stream.until_done(run_id)
        _in_order(live)
        assert {e["type"] for e in live} == {"state"}
        assert live[0]["pipeline_name"] is None
        # a client that saw only the first two events resumes from there: the rest, in order
        with http.stream("GET", f"/events?run={run_id}", headers={"Last-Event-ID": str(live[1]["id"])}) as response:
            resumed = Stream(response).until_done(run_id)
        assert resumed == live[2:]
        # from the start, by query parameter
        with http.stream("GET", f"/events?run={run_id}&last_event_id=0") as response:
            assert Stream(response).until_done(run_id) == live
        bad = http.get("/events", headers={"Last-Event-ID": "yesterday"})
        assert bad.status_code == 422
        assert bad.headers["content-type"] == "application/problem+json"
        assert http.get("/events?type=nope").status_code == 422


async def test_a_member_of_another_group_sees_nothing(db_settings: Settings, tmp_path: Path) -> None:
    services = AppContext.create(db_settings)
    await add_user(services, "alice", groups={"lab-a": "member"})
    await add_user(services, "bob", groups={"lab-b": "member"})
    await services.close()
    env = _env(db_settings, FLOWDECK_AUTH_MODE="basic")
    with _processes(tmp_path, env) as [url], httpx.Client(base_url=url, timeout=30) as http:
        alice, bob = basic("alice"), basic("bob")
        with (
            http.stream("GET", "/events", headers=alice) as a_response,
            http.stream("GET", "/events", headers=bob) as b_response,
        ):
            a_stream, b_stream = Stream(a_response), Stream(b_response)
            form = {**FORM, "research_group": "lab-a"}
            run_id = http.post(f"{WES}/runs", data=form, headers=alice).json()["run_id"]
            _in_order(a_stream.until_done(run_id))
            # the hub offered every event to both streams before alice's got the last one; bob's
            # stream carries heartbeats only (read for a while: earlier heartbeats were buffered)
            done = time.monotonic()
            while time.monotonic() < done + 2:
                assert b_stream.next() is None, "bob's stream carried an event of lab-a"
        with http.stream("GET", "/events?last_event_id=0", headers=bob) as response:
            assert Stream(response).next() is None, "bob's catch-up carried an event of lab-a"
        with http.stream("GET", f"/events?run={run_id}&last_event_id=0", headers=bob) as response:
            assert Stream(response).next() is None
        with http.stream("GET", "/events?group=lab-a&last_event_id=0", headers=alice) as response:
            assert Stream(response).next() is not None
        assert http.get("/events").status_code == 401


@pytest.mark.postgres
def test_two_api_processes_both_stream_what_a_worker_did(db_settings: Settings, tmp_path: Path) -> None:
    if not db_settings.resolved_database_url.startswith("postgresql"):
        pytest.skip("several API processes share a database on PostgreSQL")
    with (
        _processes(tmp_path, _env(db_settings, FLOWDECK_EVENTS_POLL_SECONDS="30"), apis=2) as [one, two],
        httpx.Client(base_url=one, timeout=30) as first,
        httpx.Client(base_url=two, timeout=30) as second,
        first.stream("GET", "/events") as r1,
        second.stream("GET", "/events") as r2,
    ):
        s1, s2 = Stream(r1), Stream(r2)
        run_id = first.post(f"{WES}/runs", data=FORM).json()["run_id"]
        seen_first = s1.until_done(run_id, limit=20)
        seen_second = s2.until_done(run_id, limit=20)
    _in_order(seen_first)
    assert seen_second == seen_first


async def test_a_slow_stream_holds_a_bounded_queue_and_is_caught_up_from_the_database(
    db_settings: Settings,
) -> None:
    from flowdeck.db import events as event_rows
    from flowdeck.domain.principal import LOCAL_USER
    from flowdeck.services.core.clock import utcnow
    from flowdeck.services.events.stream import EventHub, Heartbeat, make_filter

    settings = db_settings.model_copy(
        update={"events_queue_size": 3, "events_poll_seconds": 0.05, "events_heartbeat_seconds": 2}
    )
    services = AppContext.create(settings)
    hub = EventHub(services)
    try:
        sub = await hub.subscribe(make_filter(LOCAL_USER), None)
        for n in range(20):  # one transaction each: 20 wake-ups while the stream reads nothing
            async with services.db.write() as conn:
                await event_rows.add(conn, at=utcnow(), kind="cancel", reason=f"n{n}")
            hub.wake()
        for _ in range(100):
            if sub.lagging:
                break
            await asyncio.sleep(0.05)
        assert sub.lagging, "the queue never overflowed"
        assert sub.pending <= 3
        got: list[str] = []
        async for item in hub.stream(sub):
            if isinstance(item, Heartbeat):
                break
            got.extend(event["reason"] for event in item)
            if len(got) >= 20:
                break
        assert got == [f"n{n}" for n in range(20)]
    finally:
        await hub.aclose()
        await services.close()


async def test_a_commit_in_this_process_wakes_the_hub_at_once(db_settings: Settings) -> None:
    """`flowdeck up`: the worker's state changes commit in the API's process and reach a stream
    without waiting for the poll (set to a minute here)."""
    from flowdeck.db import events as event_rows
    from flowdeck.domain.principal import LOCAL_USER
    from flowdeck.services.core.clock import utcnow
    from flowdeck.services.events.stream import EventHub, make_filter

    services = AppContext.create(db_settings.model_copy(update={"events_poll_seconds": 60}))
    hub = EventHub(services)
    try:
        sub = await hub.subscribe(make_filter(LOCAL_USER), None)
        async with services.db.write() as conn:  # no hub.wake(): the commit itself wakes it
            await event_rows.add(conn, at=utcnow(), kind="cancel", reason="woken")
        await asyncio.wait_for(sub.wait(), timeout=10)
        assert [event["reason"] for event in sub.take()] == ["woken"]
    finally:
        await hub.aclose()
        await services.close()


async def test_the_hub_stops_with_its_last_stream_and_starts_again_with_the_next(db_settings: Settings) -> None:
    from flowdeck.db import events as event_rows
    from flowdeck.domain.principal import LOCAL_USER
    from flowdeck.services.core.clock import utcnow
    from flowdeck.services.events.stream import EventHub, make_filter

    services = AppContext.create(db_settings.model_copy(update={"events_poll_seconds": 0.05}))
    hub = EventHub(services)
    try:
        first = await hub.subscribe(make_filter(LOCAL_USER), None)
        second = await hub.subscribe(make_filter(LOCAL_USER), None)
        running = hub._task
        assert running is not None
        hub.unsubscribe(first)
        assert hub._task is running, "a stream is still open"
        hub.unsubscribe(second)
        assert hub._task is None
        await asyncio.wait([running], timeout=10)
        assert running.cancelled(), "no stream open, and the hub still polls"
        async with services.db.write() as conn:  # committed while nobody listens: not offered
            await event_rows.add(conn, at=utcnow(), kind="cancel", reason="before")
        third = await hub.subscribe(make_filter(LOCAL_USER), None)
        async with services.db.write() as conn:
            await event_rows.add(conn, at=utcnow(), kind="cancel", reason="after")
        await asyncio.wait_for(third.wait(), timeout=10)
        assert [event["reason"] for event in third.take()] == ["after"]
    finally:
        await hub.aclose()
        await services.close()


def _events(*ids: int) -> list[Any]:
    from datetime import UTC, datetime

    from flowdeck.services.events.stream import event_body

    at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    row = {"kind": "state", "at": at, "run_id": "r", "owning_request_id": None, "from_state": "QUEUED"}
    row |= {"to_state": "RUNNING", "reason": 'a "quoted"\nline', "actor": None, "pipeline_name": None}
    return [event_body({**row, "id": ident, "research_group": "g"}) for ident in ids]


def test_a_batch_frame_is_the_per_event_frames_the_route_used_to_write() -> None:
    """Differential: the shared bytes equal what each stream encoded for itself before."""
    from flowdeck.services.events.subscription import Batch

    events = _events(7, 8, 9)
    before = "".join(f"id: {e['id']}\nevent: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in events)
    batch = Batch(events)
    assert batch.frame() == before.encode()
    assert batch.frame() is batch.frame()
    assert batch.top == 9
    assert json.loads(batch.frame().split(b"data: ")[1].split(b"\n")[0])["reason"] == 'a "quoted"\nline'


async def test_a_stream_keeping_up_sends_the_hubs_batch_and_a_slow_one_is_cut_to_the_database() -> None:
    """The slow-client rule: more than ``limit`` events waiting drops them all (nothing held)
    and marks the stream for a catch-up; events a catch-up sent are not sent again."""
    from flowdeck.domain.filters import EventFilter
    from flowdeck.services.events.subscription import Batch, Subscription

    sub = Subscription(EventFilter(), after=0, limit=4)
    first, second = Batch(_events(1, 2)), Batch(_events(3, 4))
    sub.offer(first)
    assert sub.take() is first
    assert sub.after == 2
    sub.offer(second)
    sub.offer(Batch(_events(5)))
    assert sub.pending == 3
    assert [e["id"] for e in sub.take()] == [3, 4, 5]
    sub.offer(Batch(_events(6, 7, 8)))
    sub.offer(Batch(_events(9, 10)))  # 5 > 4 waiting: cut
    assert sub.lagging
    assert sub.pending == 0
    sub.offer(Batch(_events(11)))  # while lagging nothing is held
    assert sub.pending == 0
    sub.drop_pending()
    sub.lagging = False
    for event in _events(6, 7, 8, 9, 10, 11):  # the catch-up from the database
        sub.caught_up(event)
    sub.offer(Batch(_events(11, 12)))
    assert [e["id"] for e in sub.take()] == [12]
    assert sub.after == 12
    sub.close()


async def test_a_quiet_stream_gets_a_heartbeat_and_a_busy_one_does_not() -> None:
    from flowdeck.domain.filters import EventFilter
    from flowdeck.services.events.subscription import Batch, Subscription

    quiet, busy = Subscription(EventFilter(), 0, 10), Subscription(EventFilter(), 0, 10)
    quiet.start_heartbeat(1.0)
    busy.start_heartbeat(1.0)
    try:
        for n in range(30):  # busy sends every 0.05 s for 1.5 s (a loaded machine's slack: 0.95 s)
            await asyncio.sleep(0.05)
            busy.offer(Batch(_events(n + 1)))
            await busy.wait()
            busy.take()
            busy.sent()
            assert not busy.heartbeat_due()
        await asyncio.wait_for(quiet.wait(), timeout=5)
        assert quiet.heartbeat_due()
        assert quiet.pending == 0
        quiet.sent()
        assert not quiet.heartbeat_due()
        await asyncio.wait_for(quiet.wait(), timeout=5)  # and again after the next quiet spell
        assert quiet.heartbeat_due()
    finally:
        quiet.close()
        busy.close()


async def test_the_hub_writes_an_idle_stream_itself_and_keeps_the_order_through_a_slow_client(
    tmp_path: Path,
) -> None:
    """Differential: the bytes a stream gets are the same whether the hub wrote them from its
    fan-out (the stream idle), the write had to wait for the client (its rest finished by the
    stream's task), or they queued meanwhile and the stream's task sent them."""
    from flowdeck.domain.filters import EventFilter
    from flowdeck.services.events.stream import EventHub
    from flowdeck.services.events.subscription import Batch, Subscription
    from tests.conftest import make_settings

    services = AppContext.create(make_settings(tmp_path))
    hub = EventHub(services)
    loop = asyncio.get_running_loop()
    written: list[bytes] = []
    writers: list[asyncio.Task[Any] | None] = []
    full: asyncio.Future[None] | None = None  # set: the client's socket buffer is full

    async def sink(data: bytes) -> None:
        if full is not None and not full.done():
            await full
        writers.append(asyncio.current_task())
        written.append(data)

    sub = Subscription(EventFilter(), after=0, limit=100)
    serving = asyncio.create_task(hub.serve(sub, sink))
    try:
        for _ in range(20):  # the first line out, the stream idle in wait()
            await asyncio.sleep(0)
        assert written == [b": stream open\n\n"]
        batches = [Batch(_events(1, 2)), Batch(_events(3)), Batch(_events(4, 5)), Batch(_events(6))]
        sub.offer(batches[0])
        assert written[1:] == [batches[0].frame()], "written in the offer, by the hub"
        assert writers[1] is not serving
        full = loop.create_future()
        sub.offer(batches[1])  # the write starts and waits for the client
        sub.offer(batches[2])  # the stream is busy: queued
        assert len(written) == 2
        assert sub.pending == 2
        full.set_result(None)
        for _ in range(100):
            if len(written) == 4:
                break
            await asyncio.sleep(0)
        assert writers[2:] == [serving, serving], "finished and sent by the stream's task"
        for _ in range(20):
            await asyncio.sleep(0)
        sub.offer(batches[3])  # idle again: the hub writes
        assert written[1:] == [batches[0].frame(), batches[1].frame(), batches[2].frame(), batches[3].frame()]
        assert b"".join(written[1:]) == Batch(_events(1, 2, 3, 4, 5, 6)).frame()
        assert sub.after == 6
    finally:
        serving.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await serving
        sub.close()
        await services.close()


async def test_a_write_the_hub_makes_that_fails_ends_the_stream_with_its_error(tmp_path: Path) -> None:
    from flowdeck.domain.filters import EventFilter
    from flowdeck.services.events.stream import EventHub
    from flowdeck.services.events.subscription import Batch, Subscription
    from tests.conftest import make_settings

    services = AppContext.create(make_settings(tmp_path))
    hub = EventHub(services)

    async def sink(data: bytes) -> None:
        if data.startswith(b"id: "):
            raise ConnectionResetError("the client is gone")

    sub = Subscription(EventFilter(), after=0, limit=100)
    serving = asyncio.create_task(hub.serve(sub, sink))
    try:
        for _ in range(20):
            await asyncio.sleep(0)
        sub.offer(Batch(_events(1)))
        with pytest.raises(ConnectionResetError):
            await asyncio.wait_for(serving, timeout=10)
    finally:
        sub.close()
        await services.close()


class _AsgiClient:
    """The client's side of one ASGI response: what it was sent, and a disconnect when ``gone`` is set."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.gone = asyncio.Event()

    async def receive(self) -> dict[str, Any]:
        await self.gone.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)


async def test_a_client_that_disconnects_ends_its_response_and_its_subscription(db_settings: Settings) -> None:
    """The ASGI side of GET /events: the response follows the hub until ``http.disconnect``,
    then its subscription is gone (the last one stops the hub)."""
    from flowdeck.api.routes.events import EventStreamResponse
    from flowdeck.db import events as event_rows
    from flowdeck.domain.principal import LOCAL_USER
    from flowdeck.services.core.clock import utcnow
    from flowdeck.services.events.stream import EventHub, make_filter

    services = AppContext.create(db_settings.model_copy(update={"events_poll_seconds": 0.05}))
    hub = EventHub(services)
    client = _AsgiClient()
    sent = client.sent

    try:
        sub = await hub.subscribe(make_filter(LOCAL_USER), None)
        responding = asyncio.create_task(EventStreamResponse(hub, sub)({"type": "http"}, client.receive, client.send))
        async with services.db.write() as conn:
            await event_rows.add(conn, at=utcnow(), kind="cancel", reason="seen")
        for _ in range(200):
            if any(b'"reason": "seen"' in m.get("body", b"") for m in sent):
                break
            await asyncio.sleep(0.05)
        assert sent[0]["type"] == "http.response.start"
        assert (b"content-type", b"text/event-stream; charset=utf-8") in sent[0]["headers"]
        assert sent[1]["body"] == b": stream open\n\n"
        assert any(b'"reason": "seen"' in m.get("body", b"") for m in sent)
        client.gone.set()
        await asyncio.wait_for(responding, timeout=10)
        assert not hub._subs, "the subscription outlived the client"
        assert hub._task is None, "the hub polls for nobody"
        assert sub.sink is None
    finally:
        await hub.aclose()
        await services.close()


# What each layer does with an `http.response.body` that has `more_body` (read in their source):
# nothing but pass it on. GET /events sends its chunks past them (api/routes/events.py).
_LEAVES_BODY_CHUNKS_ALONE = {
    "flowdeck.api.access_log.OuterLayer",  # records the start's status
    "starlette.middleware.errors.ServerErrorMiddleware",  # notes that the response started
    "fastapi.telemetry._asgi.ExceptionTelemetryMiddleware",  # ends its span on the last body only
    "fastapi._body_limit.AppBodyLimitMiddleware",  # notes that the response started
    "starlette.middleware.cors.CORSMiddleware",  # adds headers to the start
    "starlette.middleware.exceptions.ExceptionMiddleware",  # notes that the response started
    "fastapi.middleware.asyncexitstack.AsyncExitStackMiddleware",  # no send wrapper
}


def test_no_middleware_between_the_server_and_the_routes_changes_body_chunks(tmp_path: Path) -> None:
    """GET /events writes its body chunks to the server's send, past the middleware: a layer
    added later that rewrites bodies (compression, say) must be checked and listed here."""
    from flowdeck.api.app import create_app
    from tests.conftest import make_settings

    app = create_app(make_settings(tmp_path, cors_origins=["http://lab.example"], opentelemetry=True))
    layer: Any = app.build_middleware_stack()
    found = []
    while hasattr(layer, "app") and type(layer).__name__ != "APIRouter":
        found.append(f"{type(layer).__module__}.{type(layer).__qualname__}")
        layer = layer.app
    assert set(found) <= _LEAVES_BODY_CHUNKS_ALONE, set(found) - _LEAVES_BODY_CHUNKS_ALONE
    assert found[0] == "flowdeck.api.access_log.OuterLayer"


async def test_the_stream_s_bytes_are_the_same_through_the_middleware_and_past_it(db_settings: Settings) -> None:
    """Differential: with the server's send in the scope (as OuterLayer puts it) the start still
    goes through the app's ``send`` and every body chunk goes to the server's, byte for byte what
    the app's ``send`` gets without it."""
    from flowdeck.api.access_log import SERVER_SEND_KEY
    from flowdeck.api.routes.events import EventStreamResponse
    from flowdeck.db import events as event_rows
    from flowdeck.domain.principal import LOCAL_USER
    from flowdeck.services.core.clock import utcnow
    from flowdeck.services.events.stream import EventHub, make_filter

    services = AppContext.create(db_settings.model_copy(update={"events_poll_seconds": 0.05}))
    hub = EventHub(services)

    async def follow(past_middleware: bool, reason: str) -> tuple[list[str], bytes]:
        client, server = _AsgiClient(), _AsgiClient()  # through the middleware; the server's own send
        through = client.sent
        scope: dict[str, Any] = {"type": "http"}
        if past_middleware:
            scope[SERVER_SEND_KEY] = server.send
        sub = await hub.subscribe(make_filter(LOCAL_USER, event_type="cancel"), 0)
        responding = asyncio.create_task(EventStreamResponse(hub, sub)(scope, client.receive, client.send))
        async with services.db.write() as conn:
            await event_rows.add(conn, at=utcnow(), kind="cancel", reason=reason)
        body = b""
        for _ in range(200):
            chunks = server.sent if past_middleware else through[1:]  # through: after the start
            body = b"".join(m["body"] for m in chunks)
            if reason.encode() in body:
                break
            await asyncio.sleep(0.05)
        client.gone.set()
        await asyncio.wait_for(responding, timeout=10)
        return [m["type"] for m in through], body

    try:
        through_types, through_body = await follow(False, "second")
        past_types, past_body = await follow(True, "second-bis")
        assert through_types[0] == past_types[0] == "http.response.start"
        assert past_types == ["http.response.start"], "a body chunk went through the middleware"
        assert b'"reason": "second"' in through_body
        # The same stream from id 0: the first event, then the second, the same bytes either way.
        assert past_body.startswith(through_body)
    finally:
        await hub.aclose()
        await services.close()
