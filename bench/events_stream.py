"""GET /events under load: N open streams on one API process (SQLite, demo backend) while state
changes are made at a steady rate. Every stream follows every state event (``type=state``: the
worst case of the fan-out). Who makes the changes (``--changes``):

- ``worker`` (the default): ``flowdeck up``, API and worker in one process; demo runs are
  submitted and each makes four (QUEUED, INITIALIZING, RUNNING, COMPLETE), the worker's three
  made in the API's process and on its event loop;
- ``apart``: ``flowdeck api`` and ``flowdeck worker`` as two processes on the one database (the
  API learns of the worker's commits by polling every ``--poll`` seconds: SQLite has no NOTIFY);
- ``cancels``: ``flowdeck api`` alone; each run is submitted and then cancelled (QUEUED,
  CANCELING: two changes, both made by the API process itself). No worker shares the cores.

Reports commit → receipt latency (receipt time minus the event's ``at``, set in the writing
transaction) p50/p99 over every stream, the API's RSS when idle, with the streams open, and
after; and the load average, since the machine is shared.

    PYTHONPATH=src python bench/events_stream.py --streams 1000 --rate 100 --seconds 10 [--changes cancels]

The streams are read by ``--clients`` processes over plain sockets on uvloop (one regex scan per
read, no JSON parse), so that the client side is not what is measured; their CPU is reported, as
is the API's CPU per event received (the figure a loaded machine moves least). The worker is set
to keep up with the rate (its defaults turn it into bursts a second or two apart).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from array import array
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from multiprocessing.connection import Connection
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import BIN, WES, Server, flowdeck_env, flowdeck_up, free_port, serve
from tests.support.processes import stop

FORM = {"workflow_type": "DEMO", "workflow_type_version": "1.0", "workflow_url": "demo://bench"}
_AT = re.compile(rb'^data: .*?"at": "([^"]+)"', re.MULTILINE)


class _Follower(asyncio.Protocol):
    """One stream, read as it arrives (a protocol, not a StreamReader: a third less client CPU)."""

    def __init__(self, want: int, shared: _Shared) -> None:
        self.want, self.shared, self.rest, self.seen = want, shared, b"", 0
        self.opened = asyncio.get_running_loop().create_future()
        self.done = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        now, shared = time.time(), self.shared
        shared.reads += 1
        # Whole lines only (a read may end inside one); one C-level scan for the events' `at`.
        text = self.rest + data
        end = text.rfind(b"\n") + 1
        text, self.rest = text[:end], text[end:]
        if not self.opened.done() and b": stream open" in text:
            self.opened.set_result(None)
        for at in _AT.findall(text):
            stamp = shared.stamps.get(at)
            if stamp is None:  # every stream gets the same events: each `at` is parsed once
                stamp = shared.stamps[at] = datetime.fromisoformat(at.decode()).timestamp()
            shared.latencies.append(now - stamp)
            self.seen += 1
        if self.seen >= self.want and not self.done.done():
            self.done.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_exception(RuntimeError(f"stream closed after {self.seen} of {self.want} events"))


class _Shared:
    def __init__(self) -> None:
        self.latencies: array[float] = array("d")
        self.stamps: dict[bytes, float] = {}
        self.reads = 0  # socket reads with data: about the server's writes (each a batch of events)


def _client(port: int, streams: int, want: int, pipe: Connection) -> None:
    shared = _Shared()

    async def follow_all() -> None:
        loop = asyncio.get_running_loop()
        request = f"GET /events?type=state HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
        followers: list[_Follower] = []
        for _ in range(streams):
            transport, follower = await loop.create_connection(lambda: _Follower(want, shared), "127.0.0.1", port)
            transport.write(request)
            followers.append(follower)
        await asyncio.gather(*(f.opened for f in followers))
        pipe.send("open")
        await asyncio.wait_for(asyncio.gather(*(f.done for f in followers)), 600)

    # uvloop (installed with uvicorn[standard]) reads the sockets at about half the CPU: the
    # clients share the two cores with the server, so their cost shows in its latency.
    import uvloop

    uvloop.run(follow_all())
    pipe.send_bytes(shared.latencies.tobytes())
    usage = resource.getrusage(resource.RUSAGE_SELF)
    pipe.send((usage.ru_utime + usage.ru_stime, shared.reads))


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far (/proc/<pid>/stat, clock ticks)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _submit(url: str, runs: int, per_second: float, cancel: bool) -> None:
    async def one(client: httpx.AsyncClient) -> None:
        response = await client.post(f"{WES}/runs", data=FORM)
        response.raise_for_status()
        if cancel:
            (await client.post(f"{WES}/runs/{response.json()['run_id']}/cancel")).raise_for_status()

    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        start = time.monotonic()
        posts = []
        for i in range(runs):
            await asyncio.sleep(max(0.0, start + i / per_second - time.monotonic()))
            posts.append(asyncio.create_task(one(client)))
        await asyncio.gather(*posts)


def _wait_idle(url: str, runs: int, cancel: bool) -> None:
    """Submit ``runs`` runs and wait until they have all ended (warms the server up)."""
    asyncio.run(_submit(url, runs, 10, cancel))
    deadline, last = time.monotonic() + 60, "CANCELING" if cancel else "COMPLETE"
    while httpx.get(f"{url}{WES}/service-info", timeout=30).json()["system_state_counts"][last] < runs:
        assert time.monotonic() < deadline, "warm-up runs did not end"
        time.sleep(0.2)


def _profile(pid: int, args: argparse.Namespace) -> subprocess.Popen[bytes]:
    """py-spy on the server while the runs are submitted (collapsed stacks, for reading or flamegraph.pl)."""
    py_spy = Path(sys.executable).parent / "py-spy"
    argv = [str(py_spy), "record", "--pid", str(pid), "--duration", str(int(args.seconds)), "--rate", "100"]
    return subprocess.Popen([*argv, "--nonblocking", "--format", "raw", "--output", args.profile])


@contextmanager
def _service(data: Path, env: dict[str, str], args: argparse.Namespace) -> Iterator[Server]:
    """The service as ``--changes`` asks (the module's docstring)."""
    if args.changes == "worker":
        with flowdeck_up(data, "demo", env) as server:
            yield server
        return
    port = free_port()
    env = {**flowdeck_env(data, port), **env, "FLOWDECK_EVENTS_POLL_SECONDS": str(args.poll)}
    with serve([str(BIN / "flowdeck"), "api"], env, port, WES + "/service-info") as server:
        if args.changes == "cancels":
            yield server
            return
        worker = subprocess.Popen([str(BIN / "flowdeck"), "worker"], env=env, stdout=subprocess.DEVNULL)
        try:
            yield server
        finally:
            stop(worker)


def measure(args: argparse.Namespace) -> None:
    cancel = args.changes == "cancels"
    changes_per_run = 2 if cancel else 4
    runs = int(args.rate * args.seconds / changes_per_run)
    env = {"FLOWDECK_DEMO_MIN_SECONDS": "0.5", "FLOWDECK_DEMO_MAX_SECONDS": "1", "FLOWDECK_DEMO_SUCCESS_RATE": "1"}
    # The worker's defaults (an idle sleep of 1 s, eight dispatches a pass, a new run's first sync
    # after 2 s) turn a steady submission rate into bursts a second or two apart; these keep the
    # state changes near the asked rate, so that what is measured is the fan-out, not a burst.
    env |= {
        "FLOWDECK_WORKER_POLL_SECONDS": "0.05",
        "FLOWDECK_DISPATCH_BATCH": "32",
        "FLOWDECK_SYNC_MIN_SECONDS": "0.25",
    }
    with tempfile.TemporaryDirectory() as data, _service(Path(data), env, args) as server:
        port = int(server.url.rsplit(":", 1)[1])
        _wait_idle(server.url, 8, cancel)
        idle = server.memory()["VmRSS"]
        shares = [args.streams // args.clients + (i < args.streams % args.clients) for i in range(args.clients)]
        pipes, procs = [], []
        for share in shares:
            mine, theirs = mp.Pipe()
            proc = mp.Process(target=_client, args=(port, share, changes_per_run * runs, theirs))
            proc.start()
            pipes.append(mine)
            procs.append(proc)
        for pipe in pipes:
            assert pipe.recv() == "open"
        time.sleep(1)
        opened = server.memory()["VmRSS"]
        load_before = os.getloadavg()[0]
        profiler = _profile(server.pid, args) if args.profile else None
        cpu_before, started = _cpu_seconds(server.pid), time.monotonic()
        asyncio.run(_submit(server.url, runs, runs / args.seconds, cancel))
        latencies, client_cpu, reads = array("d"), 0.0, 0
        for pipe in pipes:
            latencies.frombytes(pipe.recv_bytes())
            cpu, count = pipe.recv()
            client_cpu, reads = client_cpu + cpu, reads + count
        drained, server_cpu = time.monotonic() - started, _cpu_seconds(server.pid) - cpu_before
        for proc in procs:
            proc.join()
        after, load_after = server.memory(), os.getloadavg()[0]
        if profiler is not None:
            profiler.wait()
    ordered = sorted(latencies)
    p50, p99 = statistics.median(ordered) * 1000, ordered[int(len(ordered) * 0.99) - 1] * 1000
    print(
        f"changes={args.changes} streams={args.streams} rate={args.rate}/s seconds={args.seconds} runs={runs} "
        f"events received={len(ordered)} latency p50={p50:.0f} ms p99={p99:.0f} ms max={ordered[-1] * 1000:.0f} ms "
        f"API RSS idle={idle:.0f} MB streams open={opened:.0f} MB after={after['VmRSS']:.0f} MB "
        f"peak={after['VmHWM']:.0f} MB load average {load_before:.2f} → {load_after:.2f}; "
        f"API CPU {server_cpu:.1f} s ({server_cpu / len(ordered) * 1e6:.1f} µs an event received, "
        f"{reads} reads: {len(ordered) / reads:.1f} events a read); "
        f"client processes' CPU {client_cpu:.1f} s "
        f"({args.clients} processes, last event {drained:.1f} s after the first submission)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", type=int, default=50, help="open streams")
    parser.add_argument("--rate", type=float, default=100, help="state changes a second")
    parser.add_argument("--seconds", type=float, default=10, help="how long runs are submitted")
    parser.add_argument("--clients", type=int, default=2, help="client processes reading the streams")
    parser.add_argument(
        "--changes", choices=("worker", "apart", "cancels"), default="worker", help="who makes the state changes"
    )
    parser.add_argument("--poll", type=float, default=0.02, help="apart, cancels: the API's event poll, seconds")
    parser.add_argument("--profile", help="write py-spy's collapsed stacks of the server here")
    measure(parser.parse_args())


if __name__ == "__main__":
    main()
