"""Webhooks and e-mail from the outbox (docs/webhooks.md): signatures checked by the Standard
Webhooks library, a receiver that is down and then up, a rolled-back change, the SSRF policy,
research-group isolation, and mail to a real SMTP server (aiosmtpd) on 127.0.0.1."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller

from flowdeck.api.app import create_app
from flowdeck.db import webhooks as webhook_rows
from flowdeck.db.tables import deliveries, events
from flowdeck.domain.principal import LOCAL_USER, Principal
from flowdeck.domain.states import State
from flowdeck.errors import InvalidInput
from flowdeck.services.core.blocking import BlockingPool
from flowdeck.services.core.clock import utcnow
from flowdeck.services.core.context import AppContext
from flowdeck.services.events import webhooks as webhook_service
from flowdeck.services.events.deliveries import deliver_once
from flowdeck.services.events.deliveries import prune as prune_deliveries
from flowdeck.services.events.webhooks import NewWebhook
from flowdeck.services.runs import state_machine
from flowdeck.services.runs.service import NewRun, submit
from flowdeck.settings import Settings
from flowdeck.worker.loop import Worker
from tests.support.basic_app import add_user, basic, basic_app, basic_settings
from tests.support.webhook_receiver import Receiver

FAST_RETRIES = {"webhook_retry_seconds": 0.05, "webhook_retry_max_seconds": 0.2, "webhook_timeout_seconds": 2.0}


def hooked(db_settings: Settings, **extra: Any) -> Settings:
    """Loopback receivers allowed (the SSRF policy refuses them otherwise), quick retries."""
    return db_settings.model_copy(update={"outbound_allowlist": ["127.0.0.1"], **FAST_RETRIES, **extra})


@pytest.fixture
async def services(db_settings: Settings) -> AsyncIterator[AppContext]:
    ready = AppContext.create(hooked(db_settings))
    yield ready
    await ready.close()


@pytest.fixture
async def pool() -> AsyncIterator[BlockingPool]:
    ready = BlockingPool(4)
    yield ready
    ready.close()


@pytest.fixture
def receiver() -> AsyncIterator[Receiver]:
    ready = Receiver()
    yield ready  # type: ignore[misc]
    ready.stop()


async def new_run(services: AppContext, principal: Principal = LOCAL_USER, **engine: str) -> str:
    spec = NewRun(
        workflow_type="DEMO",
        workflow_type_version="1.0",
        workflow_url="demo://x",
        workflow_engine_parameters={"duration_seconds": "0.1", **engine},
    )
    return await submit(services, spec, principal)


async def outbox(services: AppContext) -> list[Any]:
    async with services.db.read() as conn:
        return list((await conn.execute(sa.select(deliveries).order_by(deliveries.c.id))).mappings())


async def run_events(services: AppContext, run_id: str) -> list[tuple[int, str]]:
    async with services.db.read() as conn:
        query = sa.select(events.c.id, events.c.to_state).where(events.c.run_id == run_id).order_by(events.c.id)
        return [(int(i), str(s)) for i, s in (await conn.execute(query)).all()]


async def finish_runs(services: AppContext, worker: Worker, rounds: int = 400) -> None:
    for _ in range(rounds):
        await worker.iterate()
        async with services.db.read() as conn:
            open_runs = (await conn.execute(sa.text("SELECT count(*) FROM runs WHERE end_time IS NULL"))).scalar_one()
        if not open_runs:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("runs did not finish")


async def deliver_all(services: AppContext, pool: BlockingPool, rounds: int = 400) -> None:
    for _ in range(rounds):
        await deliver_once(services, pool)
        if all(row["state"] != "pending" for row in await outbox(services)):
            return
        await asyncio.sleep(0.03)
    raise AssertionError(f"deliveries still pending: {await outbox(services)}")


@asynccontextmanager
async def http_on(services: AppContext) -> AsyncIterator[httpx.AsyncClient]:
    """A client on the app (lifespan included) sharing ``services``."""
    app = create_app(services.settings, services)
    transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        yield http


async def register(services: AppContext, receiver: Receiver, principal: Principal = LOCAL_USER, **kw: Any) -> str:
    hook = await webhook_service.register(services, principal, NewWebhook(url=receiver.url, **kw))
    assert hook["secret"].startswith("whsec_")
    receiver.secret = hook["secret"]
    return str(hook["id"])


async def test_a_receiver_down_then_up_gets_every_event_once_in_order(
    services: AppContext, pool: BlockingPool, receiver: Receiver
) -> None:
    await register(services, receiver)
    ids = [await new_run(services) for _ in range(3)]
    worker = Worker(services)
    try:
        await finish_runs(services, worker)  # the worker tries deliveries meanwhile: the receiver is down
        for _ in range(100):  # until an attempt was made (a round of the worker's may hold the rows)
            await deliver_once(services, pool)
            tried = [row for row in await outbox(services) if row["attempts"]]
            if tried:
                break
            await asyncio.sleep(0.05)
        assert tried
        assert all(row["state"] == "pending" and "refused" in row["last_error"] for row in tried)
        receiver.start()
        await deliver_all(services, pool)
    finally:
        await worker.deliverer.close()
    assert receiver.rejected == []
    message_ids = [message_id for message_id, _ in receiver.received]
    assert len(message_ids) == len(set(message_ids)), "a message arrived twice"
    for run_id in ids:
        got = [(p["data"]["id"], p["data"]["to_state"]) for _, p in receiver.received if p["data"]["run_id"] == run_id]
        assert got == await run_events(services, run_id)  # every event, in order, with its own id
        assert got[-1][1] == State.COMPLETE.value
    assert {row["state"] for row in await outbox(services)} == {"delivered"}


async def test_a_rolled_back_state_change_sends_nothing(
    services: AppContext, pool: BlockingPool, receiver: Receiver
) -> None:
    await register(services, receiver)
    run_id = await new_run(services)
    queued = len(await outbox(services))
    assert queued == 1  # the run's first event

    class Abandon(Exception):
        pass

    async def change_then_fail() -> None:
        async with services.db.write() as conn:
            assert await state_machine.transition(conn, run_id, State.QUEUED, State.INITIALIZING, now=utcnow())
            written = (await conn.execute(sa.select(sa.func.count()).select_from(deliveries))).scalar_one()
            assert written == queued + 1  # the delivery is written in the change's own transaction
            raise Abandon

    with pytest.raises(Abandon):
        await change_then_fail()
    assert len(await outbox(services)) == queued
    receiver.start()
    await deliver_all(services, pool)
    assert [p["data"]["to_state"] for _, p in receiver.received] == [State.QUEUED.value]


async def test_the_ssrf_policy_refuses_a_loopback_receiver_at_registration_and_delivery(
    db_settings: Settings, pool: BlockingPool, receiver: Receiver
) -> None:
    services = AppContext.create(db_settings.model_copy(update=FAST_RETRIES))  # no allowlist
    try:
        with pytest.raises(InvalidInput, match="SSRF policy"):
            await webhook_service.register(services, LOCAL_USER, NewWebhook(url=receiver.url))
        with pytest.raises(InvalidInput, match="SSRF policy"):
            await webhook_service.register(services, LOCAL_USER, NewWebhook(url="http://169.254.169.254/latest"))
        # An endpoint whose address became forbidden after registration (as DNS can change).
        async with services.db.write() as conn:
            await webhook_rows.insert(
                conn,
                {
                    "id": "hook-1",
                    "url": receiver.url,
                    "secret": "whsec_" + "A" * 32,
                    "event_types": ["run.state"],
                    "created_at": utcnow(),
                },
            )
        receiver.secret = "whsec_" + "A" * 32
        receiver.start()
        await new_run(services)
        await deliver_once(services, pool)
        (row,) = await outbox(services)
        assert row["state"] == "pending"
        assert "SSRF policy" in row["last_error"]
        assert receiver.received == []
    finally:
        await services.close()


async def test_webhooks_api_keeps_research_groups_apart(db_settings: Settings, receiver: Receiver) -> None:
    async with basic_app(basic_settings(hooked(db_settings))) as (_app, services, http):
        await add_user(services, "root", admin=True)
        await add_user(services, "alice", groups={"lab-a": "member"})
        await add_user(services, "bob", groups={"lab-b": "member"})
        answer = await http.post(
            "/webhooks", json={"url": receiver.url, "event_types": ["run.state"]}, headers=basic("alice")
        )
        assert answer.status_code == 201, answer.text
        hook = answer.json()
        assert hook["research_group"] == "lab-a"
        assert hook["secret"].startswith("whsec_")
        shown = (await http.get(f"/webhooks/{hook['id']}", headers=basic("alice"))).json()
        assert "secret" not in shown
        paths = [f"/webhooks/{hook['id']}", f"/webhooks/{hook['id']}/deliveries"]
        for path in paths:
            assert (await http.get(path, headers=basic("bob"))).status_code == 404
        redeliver = await http.post(f"/webhooks/{hook['id']}/deliveries/1/redeliver", headers=basic("bob"))
        assert redeliver.status_code == 404
        assert (await http.delete(f"/webhooks/{hook['id']}", headers=basic("bob"))).status_code == 404
        assert (await http.get("/webhooks", headers=basic("bob"))).json() == {"webhooks": []}
        refused = await http.post(
            "/webhooks", json={"url": receiver.url, "research_group": "lab-a"}, headers=basic("bob")
        )
        assert refused.status_code == 403
        listed = (await http.get("/webhooks", headers=basic("root"))).json()["webhooks"]
        assert [h["id"] for h in listed] == [hook["id"]]
        # lab-b's runs never reach lab-a's endpoint.
        bob, alice = Principal("bob", {"lab-b": "member"}), Principal("alice", {"lab-a": "member"})
        await new_run(services, bob)
        mine = await new_run(services, alice)
        sent = (await http.get(f"/webhooks/{hook['id']}/deliveries", headers=basic("alice"))).json()["deliveries"]
        assert len(sent) == 1
        assert sent[0]["state"] == "pending"
        assert [row["payload"]["data"]["run_id"] for row in await outbox(services)] == [mine]
        assert (await http.delete(f"/webhooks/{hook['id']}", headers=basic("alice"))).status_code == 204
        assert await outbox(services) == []


async def test_redelivery_sends_the_same_message_again(
    services: AppContext, pool: BlockingPool, receiver: Receiver
) -> None:
    hook_id = await register(services, receiver)
    receiver.start()
    await new_run(services)
    await deliver_all(services, pool)
    ((first_id, first),) = receiver.received
    async with http_on(services) as http:
        (row,) = (await http.get(f"/webhooks/{hook_id}/deliveries")).json()["deliveries"]
        assert row["state"] == "delivered"
        assert row["attempts"] == 1
        assert row["message_id"] == first_id
        again = await http.post(f"/webhooks/{hook_id}/deliveries/{row['id']}/redeliver")
        assert again.status_code == 202
        assert again.json()["state"] == "pending"
    await deliver_all(services, pool)
    assert receiver.received == [(first_id, first), (first_id, first)]


# --- e-mail


class Inbox:
    """An aiosmtpd handler that keeps every message."""

    def __init__(self) -> None:
        self.mails: list[tuple[list[str], str]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.mails.append((list(envelope.rcpt_tos), envelope.content.decode()))
        return "250 OK"


@pytest.fixture
def smtp() -> Any:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield inbox, port
    controller.stop()


async def test_mail_on_completion_and_for_a_request_as_a_whole(
    db_settings: Settings, pool: BlockingPool, smtp: Any
) -> None:
    inbox, port = smtp
    settings = hooked(db_settings, smtp_host="127.0.0.1", smtp_port=port, smtp_tls="none")
    services = AppContext.create(settings)
    worker = Worker(services)
    try:
        async with http_on(services) as http:
            prefs = {"email": "ada@example.org", "on_completion": True, "on_failure": False}
            assert (await http.put("/notifications/preferences", json=prefs)).status_code == 200
            done = await new_run(services)
            await new_run(services, outcome="failure")  # on_failure is off: no mail
            request = {
                "pipeline_name": "rnaseq_deseq2",
                "pipeline_version": "1.0.0",  # the demo simulation
                "parameters": {"reference": "gencode_v44", "quantification_method": "salmon"},
                "samples": [{"sample_id": f"S{i}", "fastq_files": [f"s3://lab/S{i}_R1.fq.gz"]} for i in range(3)],
                "send_email_notification": True,
            }
            answer = await http.post("/requests", json=request)
            assert answer.status_code == 202, answer.text
            request_id = answer.json()["request_id"]
            for _ in range(5):  # the request's runs are created by the worker, then finish
                await finish_runs(services, worker)
            await deliver_all(services, pool)
    finally:
        await worker.deliverer.close()
        await services.close()
    subjects = sorted(content.split("Subject: ", 1)[1].split("\n", 1)[0].strip() for _, content in inbox.mails)
    assert subjects == sorted([f"flowdeck: run {done} COMPLETE", f"flowdeck: request {request_id} completed"])
    assert all(to == ["ada@example.org"] for to, _ in inbox.mails)


async def test_old_finished_deliveries_are_pruned_and_nothing_else(
    services: AppContext, pool: BlockingPool, receiver: Receiver
) -> None:
    await register(services, receiver)
    receiver.start()
    for _ in range(3):
        await new_run(services)
    await deliver_all(services, pool)
    receiver.stop()
    await new_run(services)  # its delivery stays pending: nobody sends it
    rows = await outbox(services)
    done = [row["id"] for row in rows if row["state"] == "delivered"]
    pending = [row["id"] for row in rows if row["state"] == "pending"]
    assert len(done) == 3
    assert len(pending) == 1
    old, recent = done[:2], done[2:]
    long_ago = utcnow() - timedelta(days=40)
    async with services.db.write() as conn:
        await conn.execute(sa.update(deliveries).where(deliveries.c.id.in_(old + pending)).values(created_at=long_ago))
        await conn.execute(sa.update(deliveries).where(deliveries.c.id == old[1]).values(state="failed"))

    kept = services.settings.model_copy(update={"delivery_retention_days": 0})
    assert await prune_deliveries(dataclasses.replace(services, settings=kept)) == 0
    assert await prune_deliveries(services) == 2
    assert sorted(row["id"] for row in await outbox(services)) == sorted(recent + pending)
    assert await prune_deliveries(services) == 0
