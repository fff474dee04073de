"""Idempotency-Key on the creating POSTs, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import httpx
import sqlalchemy as sa

from flowdeck.db.tables import idempotency_keys, requests, runs
from flowdeck.services.core import idempotency
from flowdeck.services.core.clock import utcnow
from flowdeck.services.core.context import AppContext

WES = "/ga4gh/wes/v1"
FORM = {"workflow_type": "DEMO", "workflow_type_version": "1.0", "workflow_url": "demo://hello"}
REQUEST = {
    "pipeline_name": "gatk_variant_calling",
    "pipeline_version": "1.0.0",  # the simulation (2.0.0 needs a registered reference)
    "parameters": {"reference_genome": "hg38"},
    "samples": [{"sample_id": f"S{i}", "fastq_r1": f"s3://lab/S{i}_R1.fastq.gz"} for i in range(3)],
}


async def count(services: AppContext, table: sa.Table) -> int:
    async with services.db.read() as conn:
        return int((await conn.execute(sa.select(sa.func.count()).select_from(table))).scalar_one())


def key(value: str) -> dict[str, str]:
    return {"Idempotency-Key": value}


async def wes_post(
    api: httpx.AsyncClient, headers: dict[str, str], attachment: bytes = b"hi", **extra: str
) -> httpx.Response:
    return await api.post(
        f"{WES}/runs", data={**FORM, **extra}, files={"workflow_attachment": ("a.txt", attachment)}, headers=headers
    )


async def test_wes_same_key_same_body_returns_the_original_answer(api: httpx.AsyncClient, services: AppContext) -> None:
    first = await wes_post(api, key("k1"))
    again = await wes_post(api, key("k1"))
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert await count(services, runs) == 1
    other = await wes_post(api, key("k2"))
    assert other.json() != first.json()
    assert await count(services, runs) == 2
    plain = [await wes_post(api, {}) for _ in range(2)]  # no key: every POST creates
    assert plain[0].json() != plain[1].json()
    assert await count(services, runs) == 4


async def test_wes_same_key_different_body_is_409(api: httpx.AsyncClient, services: AppContext) -> None:
    assert (await wes_post(api, key("k"))).status_code == 200
    for response in (
        await wes_post(api, key("k"), attachment=b"other"),
        await wes_post(api, key("k"), tags='{"a": "b"}'),
    ):
        assert response.status_code == 409
        assert response.json() == {
            "msg": "Idempotency-Key 'k' was already used with a different request body; use a new key for a different request",
            "status_code": 409,
        }
    assert await count(services, runs) == 1


async def test_keys_are_scoped_per_endpoint(api: httpx.AsyncClient, services: AppContext) -> None:
    assert (await wes_post(api, key("shared"))).status_code == 200
    assert (await api.post("/requests", json=REQUEST, headers=key("shared"))).status_code == 202
    assert await count(services, runs) == 1
    assert await count(services, requests) == 1


async def test_a_failed_first_use_is_forgotten(api: httpx.AsyncClient, services: AppContext) -> None:
    assert (await wes_post(api, key("k"), workflow_type="COBOL")).status_code == 400
    assert (await wes_post(api, key("k"))).status_code == 200
    assert await count(services, runs) == 1


async def test_concurrent_first_uses_create_once(api: httpx.AsyncClient, services: AppContext) -> None:
    responses = await asyncio.gather(*(wes_post(api, key("race")) for _ in range(6)))
    assert {r.status_code for r in responses} == {200}
    assert len({r.json()["run_id"] for r in responses}) == 1
    assert await count(services, runs) == 1
    answers = await asyncio.gather(*(api.post("/requests", json=REQUEST, headers=key("race")) for _ in range(6)))
    assert {r.status_code for r in answers} == {202}
    assert len({r.json()["request_id"] for r in answers}) == 1
    assert await count(services, requests) == 1


async def test_requests_replay_and_conflict(api: httpx.AsyncClient, services: AppContext) -> None:
    first = await api.post("/requests", json=REQUEST, headers=key("r"))
    again = await api.post("/requests", json=dict(reversed(list(REQUEST.items()))), headers=key("r"))  # same JSON
    assert first.status_code == again.status_code == 202
    assert again.json() == first.json()
    changed: dict[str, Any] = {**REQUEST, "description": "changed"}
    conflict = await api.post("/requests", json=changed, headers=key("r"))
    assert conflict.status_code == 409
    assert conflict.headers["content-type"] == "application/problem+json"
    assert "different request body" in conflict.json()["detail"]
    assert await count(services, requests) == 1


async def test_old_keys_may_be_reused(api: httpx.AsyncClient, services: AppContext) -> None:
    first = await wes_post(api, key("old"))
    async with services.db.write() as conn:
        await conn.execute(sa.update(idempotency_keys).values(created_at=utcnow() - timedelta(hours=25)))
    second = await wes_post(api, key("old"))
    assert second.status_code == 200
    assert second.json() != first.json()
    assert await count(services, runs) == 2


async def test_bad_keys_are_400(api: httpx.AsyncClient, services: AppContext) -> None:
    response = await wes_post(api, key("x" * 300))
    assert response.status_code == 400
    assert "Idempotency-Key must be" in response.json()["msg"]
    assert await count(services, runs) == 0


async def test_the_second_of_two_overlapping_uses_waits_for_the_first(services: AppContext) -> None:
    calls = 0

    async def create() -> idempotency.Answer:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.3)  # the second use arrives while the first is still creating
        return idempotency.Answer(201, {"id": calls})

    use = idempotency.Use("alice", "POST /things", "k", "hash")
    first, second = await asyncio.gather(
        idempotency.once(services, use, create), idempotency.once(services, use, create)
    )
    assert calls == 1
    assert {first.replayed, second.replayed} == {False, True}
    assert first.body == second.body == {"id": 1}
    assert first.status_code == second.status_code == 201


async def test_jobs_replay_and_conflict(api: httpx.AsyncClient, services: AppContext) -> None:
    job = {
        "pipeline_name": "gatk_variant_calling",
        "pipeline_version": "1.0.0",
        "parameters": {**REQUEST["samples"][0], "reference_genome": "hg38"},
    }
    first = await api.post("/jobs", json=job, headers=key("j"))
    again = await api.post("/jobs", json=job, headers=key("j"))
    assert first.status_code in (201, 202)
    assert again.status_code == first.status_code
    assert again.json() == first.json()
    assert first.headers["Location"].endswith(first.json()["id"])
    conflict = await api.post("/jobs", json={**job, "description": "other"}, headers=key("j"))
    assert conflict.status_code == 409
    assert await count(services, runs) == 1
