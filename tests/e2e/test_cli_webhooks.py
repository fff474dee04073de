"""``flowdeck webhooks`` and ``flowdeck notifications`` against a real ``flowdeck up``: an endpoint
registered from the CLI receives a run's events (signatures checked by the Standard Webhooks
library), its delivery log is listed and paged, a delivery is sent again, and preferences are set,
shown and turned off."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.cli_support import CLI, client_env, running_server, server_env
from tests.support.webhook_receiver import Receiver


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("cli-hooks")
    env = server_env(folder, FLOWDECK_OUTBOUND_ALLOWLIST="127.0.0.1", FLOWDECK_WEBHOOK_RETRY_SECONDS="0.1")
    with running_server(env, folder) as url:
        yield url


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    ready = Receiver()
    ready.start()
    yield ready
    ready.stop()


def flowdeck(server: str, tmp_path: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    env = client_env(server, tmp_path / "config")
    return subprocess.run([*CLI, *argv], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)


def as_json(server: str, tmp_path: Path, *argv: str) -> Any:
    done = flowdeck(server, tmp_path, *argv, "-o", "json")
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)


def wait_for(predicate: Any, what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


def test_an_endpoint_added_from_the_cli_gets_a_runs_events_and_its_log_pages(
    server: str, tmp_path: Path, receiver: Receiver
) -> None:
    hook = as_json(server, tmp_path, "webhooks", "add", receiver.url, "--event", "run.state", "--description", "lab")
    assert hook["secret"].startswith("whsec_")
    receiver.secret = hook["secret"]
    listed = flowdeck(server, tmp_path, "webhooks", "list")
    assert hook["id"] in listed.stdout
    assert "whsec_" not in listed.stdout  # the secret is shown once, at registration
    run = as_json(server, tmp_path, "runs", "submit", "--type", "DEMO", "--type-version", "1.0", "--url", "demo://x")
    states = lambda: [p["data"]["to_state"] for _, p in receiver.received if p["data"].get("run_id") == run["run_id"]]  # noqa: E731
    wait_for(lambda: "COMPLETE" in states(), f"no COMPLETE delivery: {receiver.received} {receiver.rejected}")
    assert not receiver.rejected

    log = as_json(server, tmp_path, "webhooks", "deliveries", hook["id"])["deliveries"]
    assert {row["state"] for row in log} == {"delivered"}
    assert len(log) == len(receiver.received)
    first = flowdeck(server, tmp_path, "webhooks", "deliveries", hook["id"], "--limit", "1")
    assert first.returncode == 0
    assert first.stderr.startswith("more: --before ")
    before = first.stderr.split()[-1]
    rest = as_json(server, tmp_path, "webhooks", "deliveries", hook["id"], "--before", before)["deliveries"]
    assert [row["id"] for row in rest] == [row["id"] for row in log[1:]]

    count = len(receiver.received)
    again = as_json(server, tmp_path, "webhooks", "redeliver", hook["id"], str(log[-1]["id"]))
    assert again["state"] == "pending"
    wait_for(lambda: len(receiver.received) == count + 1, "the redelivery did not arrive")
    assert receiver.received[-1][0] == receiver.received[0][0]  # the same webhook-id: receivers deduplicate

    assert flowdeck(server, tmp_path, "webhooks", "delete", hook["id"]).returncode == 0
    missing = flowdeck(server, tmp_path, "webhooks", "get", hook["id"])
    assert missing.returncode == 1
    assert missing.stderr.startswith("flowdeck: 404")


def test_a_refused_endpoint_and_notification_preferences(server: str, tmp_path: Path) -> None:
    refused = flowdeck(server, tmp_path, "webhooks", "add", "http://127.0.0.1:1/x", "--event", "no.such")
    assert refused.returncode == 1
    assert "no.such" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1

    set_ = as_json(server, tmp_path, "notifications", "set", "--email", "pi@lab.example", "--on-completion")
    assert set_ == as_json(server, tmp_path, "notifications", "show")
    assert set_["on_completion"] is True
    assert set_["on_failure"] is True  # not given: the server's default
    changed = as_json(server, tmp_path, "notifications", "set", "--email", "pi@lab.example", "--no-on-failure")
    assert (changed["on_completion"], changed["on_failure"]) == (False, False)  # the whole record is set
    assert flowdeck(server, tmp_path, "notifications", "off").returncode == 0
    gone = flowdeck(server, tmp_path, "notifications", "show")
    assert gone.returncode == 1
    assert gone.stderr.startswith("flowdeck: 404")
