"""The isolation matrix: every route of the app x {owner-group member, other-group
member, owner-group admin, service admin, anonymous}, in auth mode ``basic``.

Two research groups each own a dataset, a job (run to completion, so it has
tasks and logs), a WES run and a request. Every route the app serves must be
classified in :data:`ROUTES`; a new route fails ``test_every_route_is_classified``
until someone decides which checks it gets. The checks:

- ``object``: a lab-a object's route. Its owner group's member and admin and a
  service admin get through; a lab-b member gets the very 404 (same body, the
  id aside) a missing id gets; anonymous gets a 401 with ``WWW-Authenticate``.
  Routes that change things are only tried by those who must be refused, and
  the object is checked unchanged afterwards.
- ``list``: each caller sees exactly their groups' objects (all for an admin);
  no id, group name or URL of another group appears; counts agree.
- ``create``: filing a new object under another group is refused with the same
  answer as for a group that does not exist, and stores nothing.
- ``account``, ``catalog``: need a signed-in caller; account routes are covered
  in depth by test_accounts_api, plus cross-group checks here.
- ``public``: open to anonymous callers, and nothing of any group in them.
- ``admin``: service admins only (``/metrics``: counts across all groups).
- ``capability``: the URL's signed token is the credential (storage up/downloads).
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from flowdeck.api.admission import served_routes
from flowdeck.services.core.context import AppContext
from flowdeck.settings import Settings
from flowdeck.worker.loop import Worker
from tests.support.basic_app import add_user, basic, basic_app, basic_settings

WES = "/ga4gh/wes/v1"
USERS = {
    "member": basic("alice"),  # lab-a member: owns the lab-a objects
    "group_admin": basic("lead"),  # lab-a admin
    "other": basic("bob"),  # lab-b member
    "service_admin": basic("root"),
    "anonymous": {},
}
ROUTES: dict[tuple[str, str], str] = {
    ("GET", "/openapi.json"): "public",
    ("GET", "/docs"): "public",
    ("GET", "/docs/oauth2-redirect"): "public",
    ("GET", "/redoc"): "public",
    ("GET", "/auth/instructions"): "public",
    ("GET", "/healthz"): "public",
    ("GET", "/healthcheck"): "public",
    ("GET", "/ga4gh/wes/v1/docs"): "public",
    ("GET", "/ga4gh/wes/v1/redoc"): "public",
    ("GET", "/metrics"): "admin",
    ("GET", "/events"): "stream",  # its own isolation test: tests/integration/test_events_stream.py
    ("GET", "/groups/{name}/usage"): "group",  # its own isolation test: tests/integration/test_fair_share.py
    ("GET", "/storage/{token}"): "capability",
    ("PUT", "/storage/{token}"): "capability",
    ("GET", f"{WES}/service-info"): "public",  # counts only the caller's runs: checked in _visible()
    ("GET", f"{WES}/runs"): "list",
    ("POST", f"{WES}/runs"): "create",
    ("GET", f"{WES}/runs/{{run_id}}"): "object",
    ("GET", f"{WES}/runs/{{run_id}}/status"): "object",
    ("POST", f"{WES}/runs/{{run_id}}/cancel"): "object",
    ("POST", f"{WES}/runs/{{run_id}}/rerun"): "object",
    ("GET", f"{WES}/runs/{{run_id}}/tasks"): "object",
    ("GET", f"{WES}/runs/{{run_id}}/tasks/{{task_id}}"): "object",
    ("GET", f"{WES}/runs/{{run_id}}/logs/{{stream}}"): "object",
    ("GET", f"{WES}/runs/{{run_id}}/tasks/{{task_id}}/logs/{{stream}}"): "object",
    ("GET", f"{WES}/runs/{{run_id}}/outputs"): "object",
    ("GET", f"{WES}/runs/{{run_id}}/outputs/{{index}}"): "object",
    ("GET", f"{WES}/runs/{{run_id}}/ro-crate"): "object",
    ("GET", f"{WES}/runs/{{run_id}}/outputs.zip"): "object",
    ("DELETE", f"{WES}/runs/{{run_id}}"): "object",
    ("GET", "/jobs"): "list",
    ("POST", "/jobs"): "create",
    ("GET", "/jobs/{job_id}"): "object",
    ("POST", "/jobs/{job_id}/cancel"): "object",
    ("GET", "/jobs/{job_id}/ro-crate"): "object",
    ("GET", "/jobs/{job_id}/outputs.zip"): "object",
    ("DELETE", "/jobs/{job_id}"): "object",
    ("POST", "/jobs/{job_id}/rerun"): "object",
    ("GET", "/jobs/{job_id}/events"): "object",
    ("GET", "/datasets"): "list",
    ("POST", "/datasets"): "create",
    ("GET", "/datasets/{dataset_id}"): "object",
    ("DELETE", "/datasets/{dataset_id}"): "object",
    ("GET", "/requests"): "list",
    ("POST", "/requests"): "create",
    ("GET", "/requests/{request_id}"): "object",
    ("GET", "/requests/{request_id}/state"): "object",
    ("POST", "/requests/{request_id}/cancel"): "object",
    ("GET", "/requests/{request_id}/events"): "object",
    ("GET", "/requests/{request_id}/ro-crate"): "object",
    ("GET", "/pipelines"): "catalog",
    ("GET", "/pipelines/{name}"): "catalog",
    ("GET", "/pipelines/{name}/schema"): "catalog",
    ("GET", "/references"): "catalog",
    ("GET", "/references/{name}"): "account",  # a signed-in caller; names a site reference, no group data
    ("GET", "/me"): "account",
    ("GET", "/users"): "account",
    ("POST", "/users"): "account",
    ("GET", "/users/{name}"): "account",
    ("PUT", "/users/{name}/password"): "account",
    ("GET", "/groups"): "account",
    ("POST", "/groups"): "account",
    ("POST", "/groups/{name}/members"): "account",
    ("DELETE", "/groups/{name}/members/{username}"): "account",
    ("GET", "/tokens"): "account",
    ("POST", "/tokens"): "account",
    ("DELETE", "/tokens/{token_id}"): "account",
    # The web UI signs in with a cookie, not a header: anonymous browsers are sent to its sign-in
    # page (a 303, not a 401), and its isolation is tested in tests/integration/test_ui.py.
    ("GET", "/"): "ui",
    ("GET", "/ui"): "ui",
    ("GET", "/ui/"): "ui",
    ("GET", "/ui/rows"): "ui",
    ("GET", "/ui/sign-in"): "ui",
    ("POST", "/ui/sign-in"): "ui",
    ("POST", "/ui/sign-out"): "ui",
    ("GET", "/ui/sign-in/oidc"): "ui",
    ("GET", "/ui/oidc/callback"): "ui",
    ("GET", "/ui/static/{name}"): "ui",
    ("GET", "/ui/{rest:path}"): "ui",
    ("GET", "/ui/runs/{run_id}"): "ui",
    ("GET", "/ui/launch"): "ui",
    ("GET", "/ui/datasets"): "ui",
    ("POST", "/ui/datasets"): "ui",
    ("GET", "/ui/admin"): "ui",
    ("POST", "/ui/admin/tokens"): "ui",
    ("POST", "/ui/admin/tokens/{token_id}/revoke"): "ui",
    ("POST", "/ui/admin/users"): "ui",
    ("POST", "/ui/admin/groups"): "ui",
    ("POST", "/ui/admin/groups/{name}/members"): "ui",
    ("POST", "/ui/admin/groups/{name}/members/{username}/remove"): "ui",
    ("GET", "/ui/launch/{name}"): "ui",
    ("POST", "/ui/launch/{name}"): "ui",
    ("GET", "/ui/runs/{run_id}/state"): "ui",
    ("GET", "/ui/runs/{run_id}/{action}"): "ui",
    ("POST", "/ui/runs/{run_id}/cancel"): "ui",
    ("POST", "/ui/runs/{run_id}/rerun"): "ui",
    ("GET", "/ui/runs/{run_id}/logs/{stream}"): "ui",
    ("GET", "/ui/runs/{run_id}/tasks/{task_id}/logs/{stream}"): "ui",
    ("GET", "/ui/runs/{run_id}/outputs/{index}"): "ui",
    ("GET", "/ui/launch/{name}/sheet"): "ui",
    ("POST", "/ui/launch/{name}/sheet"): "ui",
    ("GET", "/ui/requests"): "ui",
    ("GET", "/ui/requests/{request_id}"): "ui",
    ("GET", "/ui/requests/{request_id}/live"): "ui",
    ("GET", "/ui/requests/{request_id}/cancel"): "ui",
    ("POST", "/ui/requests/{request_id}/cancel"): "ui",
    ("POST", "/ui/datasets/register"): "ui",
    ("POST", "/ui/datasets/upload-url"): "ui",
    ("GET", "/ui/datasets/{dataset_id}"): "ui",
    ("GET", "/ui/overview"): "ui",
    # webhooks: their own isolation test (tests/integration/test_webhooks.py)
    ("GET", "/webhooks"): "webhooks",
    ("POST", "/webhooks"): "webhooks",
    ("GET", "/webhooks/{webhook_id}"): "webhooks",
    ("DELETE", "/webhooks/{webhook_id}"): "webhooks",
    ("GET", "/webhooks/{webhook_id}/deliveries"): "webhooks",
    ("POST", "/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver"): "webhooks",
    ("GET", "/notifications/preferences"): "account",
    ("PUT", "/notifications/preferences"): "account",
    ("DELETE", "/notifications/preferences"): "account",
}
JOB = {
    "pipeline_name": "gatk_variant_calling",
    "pipeline_version": "1.0.0",  # the simulation: 2.0.0 runs real tools and needs a registered reference
    "parameters": {
        "sample_id": "WGS_001",
        "reference_genome": "hg38",
        "caller": "HaplotypeCaller",
        "fastq_r1": "s3://input-data/WGS_001_R1.fastq.gz",
        "fastq_r2": "s3://input-data/WGS_001_R2.fastq.gz",
        "quality_threshold": 30,
        "depth_threshold": 10,
    },
}
REQUEST = {
    "pipeline_name": "rnaseq_deseq2",
    "pipeline_version": "1.0.0",  # the demo simulation (2.0.0 runs tools: test_rnaseq.py)
    "parameters": {"reference": "gencode_v44", "quantification_method": "salmon"},
    "samples": [{"sample_id": "S001", "fastq_files": ["s3://lab/reads/S001_R1.fastq.gz"]}],
}


def app_routes(app: FastAPI) -> Iterator[tuple[str, str]]:
    """(method, path) of every route the app serves, included routers flattened."""
    for route, path in served_routes(app.routes):
        for method in sorted(set(getattr(route, "methods", None) or {"?"}) - {"HEAD"}):
            yield method, path


@dataclass
class Lab:
    """The objects one research group owns."""

    group: str
    dataset: str = ""
    job: str = ""
    run: str = ""
    task: str = ""
    request: str = ""
    urls: list[str] = field(default_factory=list)

    def ids(self) -> list[str]:
        return [self.dataset, self.job, self.run, self.task, self.request]


@dataclass
class World:
    app: FastAPI
    services: AppContext
    http: httpx.AsyncClient
    a: Lab
    b: Lab


async def _ok(response: httpx.Response, *codes: int) -> dict[str, Any]:
    assert response.status_code in codes, (
        f"{response.request.method} {response.request.url}: {response.status_code} {response.text}"
    )
    body: dict[str, Any] = response.json()
    return body


async def _fill(services: AppContext, http: httpx.AsyncClient, lab: Lab, who: dict[str, str]) -> None:
    group = {"research_group": lab.group}
    lab.dataset = (
        await _ok(
            await http.post(
                "/datasets", json={"name": "reads", "uri": "https://example.org/r.tsv", **group}, headers=who
            ),
            201,
        )
    )["id"]
    lab.job = (await _ok(await http.post("/jobs", json={**JOB, **group}, headers=who), 200, 201))["id"]
    form = {"workflow_type": "DEMO", "workflow_type_version": "1.0", "workflow_url": "demo://hello", **group}
    lab.run = (await _ok(await http.post(f"{WES}/runs", data=form, headers=who), 200))["run_id"]
    lab.request = (await _ok(await http.post("/requests", json={**REQUEST, **group}, headers=who), 202))["request_id"]
    worker = Worker(services)
    for _ in range(400):
        await worker.iterate()
        states = [
            (await http.get(f"{WES}/runs/{run}/status", headers=who)).json()["state"] for run in (lab.run, lab.job)
        ]
        if all(s == "COMPLETE" for s in states):
            break
        await asyncio.sleep(0.02)
    else:
        raise AssertionError(f"runs of {lab.group} did not complete: {states}")
    tasks = await _ok(await http.get(f"{WES}/runs/{lab.run}/tasks", headers=who), 200)
    assert tasks["task_logs"], "a demo run should have tasks"
    lab.task = tasks["task_logs"][0]["id"]
    log = await _ok(await http.get(f"{WES}/runs/{lab.run}", headers=who), 200)
    lab.urls = [u for u in re.findall(r"https?://[^\"' ]+", str(log)) if lab.run in u]


@pytest.fixture
async def world(db_settings: Settings) -> AsyncIterator[World]:
    async with basic_app(basic_settings(db_settings)) as (app, services, http):
        await add_user(services, "root", admin=True)
        await add_user(services, "alice", groups={"lab-a": "member"})
        await add_user(services, "lead", groups={"lab-a": "admin"})
        await add_user(services, "bob", groups={"lab-b": "member"})
        a, b = Lab("lab-a"), Lab("lab-b")
        await _fill(services, http, a, USERS["member"])
        await _fill(services, http, b, USERS["other"])
        yield World(app, services, http, a, b)


def _fill_path(path: str, lab: Lab) -> str:
    values = {
        "run_id": lab.run,
        "job_id": lab.job,
        "dataset_id": lab.dataset,
        "request_id": lab.request,
        "task_id": lab.task,
        "stream": "stdout",
        "index": "0",
        "webhook_id": "x",
        "delivery_id": "1",
    }
    return re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], path)


def _missing(lab: Lab) -> Lab:
    """Ids shaped like the lab's, of objects that do not exist."""

    def twin(ident: str) -> str:
        fresh = uuid.uuid4().hex
        return (
            (fresh * 4)[: len(ident)]
            if re.fullmatch(r"[0-9a-f-]+", ident) is None
            else re.sub(r"[0-9a-f]", lambda _m: fresh[_m.start() % 32], ident)
        )

    return Lab(lab.group, *(twin(i) for i in lab.ids()))


def _masked(body: str, labs: list[Lab]) -> str:
    for lab in labs:
        for ident in lab.ids():
            body = body.replace(ident, "<id>")
    return body


def test_every_route_is_classified(tmp_path: Any) -> None:
    from flowdeck.api.app import create_app

    served = set(app_routes(create_app(Settings(data_dir=tmp_path / "d", auth_mode="basic"))))
    unclassified = sorted(served - set(ROUTES))
    assert not unclassified, f"classify these routes in tests/integration/test_isolation.py ROUTES: {unclassified}"
    stale = sorted(set(ROUTES) - served)
    assert not stale, f"routes classified but no longer served (remove them from ROUTES): {stale}"


def _routes(kind: str) -> list[tuple[str, str]]:
    return sorted(key for key, value in ROUTES.items() if value == kind)


async def test_anonymous_callers_get_401_with_a_challenge_everywhere_but_public_routes(world: World) -> None:
    failures = []
    for (method, path), kind in sorted(ROUTES.items()):
        if kind in ("public", "capability", "ui"):
            continue
        filled = (
            path.replace("{name}", "alice")
            .replace("{username}", "alice")
            .replace("{token_id}", "x")
            .replace("{token}", "x")
        )
        answer = await world.http.request(method, _fill_path(filled, world.a))
        if answer.status_code != 401 or "www-authenticate" not in answer.headers:
            failures.append(f"{method} {path}: {answer.status_code} {answer.headers.get('www-authenticate')}")
    assert not failures, failures


async def test_another_groups_object_is_the_same_404_as_a_missing_one(world: World) -> None:
    failures = []
    ghost = _missing(world.a)
    for method, path in _routes("object"):
        hidden = await world.http.request(method, _fill_path(path, world.a), headers=USERS["other"])
        missing = await world.http.request(method, _fill_path(path, ghost), headers=USERS["other"])
        if hidden.status_code != 404:
            failures.append(f"{method} {path}: {hidden.status_code} for another group's object")
        elif _masked(hidden.text, [world.a]) != _masked(missing.text, [ghost]):
            failures.append(f"{method} {path}: {hidden.text!r} differs from missing {missing.text!r}")
        elif "lab-a" in hidden.text or "alice" in hidden.text:
            failures.append(f"{method} {path}: leaks {hidden.text!r}")
    assert not failures, failures
    # nothing the refused calls tried (cancel, rerun, delete) happened
    for path in (f"{WES}/runs/{world.a.run}/status", f"{WES}/runs/{world.a.job}/status"):
        assert (await world.http.get(path, headers=USERS["member"])).json()["state"] == "COMPLETE"
    assert (await world.http.get(f"/datasets/{world.a.dataset}", headers=USERS["member"])).status_code == 200
    jobs = (await world.http.get("/jobs", headers=USERS["service_admin"])).json()
    assert jobs["total"] == 6, "a refused rerun made a job"  # a job, a WES run, one request run per lab


async def test_the_owner_group_and_service_admins_reach_the_object(world: World) -> None:
    failures = []
    files = (await _ok(await world.http.get(f"{WES}/runs/{world.a.run}/outputs", headers=USERS["member"]), 200))[
        "files"
    ]
    for method, path in _routes("object"):
        if method != "GET":
            continue
        expected = 404 if path.endswith("{index}") and not files else 200
        for who in ("member", "group_admin", "service_admin"):
            answer = await world.http.get(_fill_path(path, world.a), headers=USERS[who])
            no_file = (
                "/logs/" in path and answer.status_code == 404 and "not available" in answer.text
            )  # demo runs log nothing
            if answer.status_code != expected and not no_file:
                failures.append(f"{who} {method} {path}: {answer.status_code} {answer.text[:200]}")
    assert not failures, failures
    # and a member acts on it: rerun, cancel (of a finished job: a 409, not a 404), delete
    assert (await world.http.post(f"/jobs/{world.a.job}/rerun", headers=USERS["member"])).status_code == 201
    assert (await world.http.post(f"{WES}/runs/{world.a.run}/cancel", headers=USERS["group_admin"])).status_code in (
        200,
        409,
    )
    assert (await world.http.delete(f"/datasets/{world.a.dataset}", headers=USERS["member"])).status_code in (204, 409)


async def _visible(world: World, who: str) -> dict[str, Any]:
    http, headers = world.http, USERS[who]
    return {
        "runs": await _ok(await http.get(f"{WES}/runs", params={"page_size": "100"}, headers=headers), 200),
        "jobs": await _ok(await http.get("/jobs", headers=headers), 200),
        "datasets": await _ok(await http.get("/datasets", headers=headers), 200),
        "requests": await _ok(await http.get("/requests", headers=headers), 200),
        "info": await _ok(await http.get(f"{WES}/service-info", headers=headers), 200),
    }


async def test_lists_and_counts_show_only_the_callers_groups(world: World) -> None:
    assert {key for key, kind in ROUTES.items() if kind == "list"} == {
        ("GET", f"{WES}/runs"),
        ("GET", "/jobs"),
        ("GET", "/datasets"),
        ("GET", "/requests"),
    }, "a new list route: add it to _visible()"
    for who, mine, theirs in (
        ("member", world.a, world.b),
        ("group_admin", world.a, world.b),
        ("other", world.b, world.a),
    ):
        seen = await _visible(world, who)
        text = str(seen)
        leaks = [i for i in theirs.ids() if i in text] + [u for u in theirs.urls if u in text]
        assert not leaks, f"{who} sees {theirs.group}'s {leaks}"
        assert theirs.group not in text, f"{who} sees the name {theirs.group}"
        for ident in (mine.dataset, mine.job, mine.run, mine.request):
            assert ident in text, f"{who} misses their own {ident}"
        runs = len(seen["runs"]["runs"])
        assert runs == 3, f"{who}: {runs} runs"  # the job, the WES run, the request's one run
        assert seen["jobs"]["total"] == len(seen["jobs"]["jobs"]) == 3
        assert sum(seen["info"]["system_state_counts"].values()) == runs
    everything = await _visible(world, "service_admin")
    text = str(everything)
    for ident in world.a.ids()[:3] + world.b.ids()[:3]:
        assert ident in text
    assert everything["jobs"]["total"] == 6
    assert sum(everything["info"]["system_state_counts"].values()) == 6


async def test_creating_in_another_group_is_refused_like_in_no_group(world: World) -> None:
    bodies = {
        f"{WES}/runs": lambda g: {
            "data": {
                "workflow_type": "DEMO",
                "workflow_type_version": "1.0",
                "workflow_url": "demo://x",
                "research_group": g,
            }
        },
        "/jobs": lambda g: {"json": {**JOB, "research_group": g}},
        "/datasets": lambda g: {"json": {"name": "x", "uri": "https://example.org/x", "research_group": g}},
        "/requests": lambda g: {"json": {**REQUEST, "research_group": g}},
    }
    assert {path for _, path in _routes("create")} == set(bodies), "a new create route: add its body here"
    before = (await world.http.get("/jobs", headers=USERS["service_admin"])).json()["total"]
    datasets = len((await world.http.get("/datasets", headers=USERS["service_admin"])).json()["datasets"])
    for path, body in bodies.items():
        other = await world.http.post(path, headers=USERS["other"], **body("lab-a"))
        nowhere = await world.http.post(path, headers=USERS["other"], **body("lab-nowhere"))
        assert other.status_code in (400, 403, 422), f"{path}: {other.status_code} {other.text}"
        assert other.status_code == nowhere.status_code, path
        assert other.text.replace("lab-a", "X") == nowhere.text.replace("lab-nowhere", "X"), path
    assert (await world.http.get("/jobs", headers=USERS["service_admin"])).json()["total"] == before
    assert len((await world.http.get("/datasets", headers=USERS["service_admin"])).json()["datasets"]) == datasets


async def test_account_routes_do_not_cross_groups(world: World) -> None:
    http, bob = world.http, USERS["other"]
    groups = await _ok(await http.get("/groups", headers=bob), 200)
    assert "lab-a" not in str(groups)
    assert "alice" not in str(groups)
    hidden, missing = await http.get("/users/alice", headers=bob), await http.get("/users/nobody", headers=bob)
    assert hidden.status_code == missing.status_code == 404
    assert hidden.text.replace("alice", "X") == missing.text.replace("nobody", "X")
    add = {"username": "bob"}
    hidden = await http.post("/groups/lab-a/members", json=add, headers=bob)
    missing = await http.post("/groups/lab-nowhere/members", json=add, headers=bob)
    assert hidden.status_code == missing.status_code == 404
    assert hidden.text.replace("lab-a", "X") == missing.text.replace("lab-nowhere", "X")
    removal = await http.delete("/groups/lab-a/members/alice", headers=bob)
    assert removal.status_code == 404
    token = await _ok(await http.post("/tokens", json={"name": "ci"}, headers=USERS["member"]), 201)
    hidden = await http.delete(f"/tokens/{token['id']}", headers=bob)
    missing = await http.delete(f"/tokens/{uuid.uuid4().hex}", headers=bob)
    assert hidden.status_code == missing.status_code == 404
    assert "alice" not in hidden.text
    assert (await http.get("/tokens", params={"username": "alice"}, headers=bob)).status_code == 404
    for method, path, body in (
        ("GET", "/users", None),
        ("POST", "/users", {"username": "eve"}),
        ("POST", "/groups", {"name": "lab-c"}),
    ):
        answer = await http.request(method, path, headers=bob, json=body)
        assert answer.status_code == 403, f"{method} {path}: {answer.status_code}"


async def test_catalog_needs_a_signed_in_caller(world: World) -> None:
    for who in ("member", "other", "service_admin"):
        for method, path in _routes("catalog"):
            answer = await world.http.request(
                method, path.replace("{name}", "gatk_variant_calling"), headers=USERS[who]
            )
            assert answer.status_code == 200, f"{who} {path}: {answer.status_code}"
            assert "lab-a" not in answer.text


async def test_public_routes_show_no_group_data(world: World) -> None:
    for method, path in _routes("public"):
        answer = await world.http.request(method, path)
        assert answer.status_code in (200, 503), f"{path}: {answer.status_code}"
        leaks = [i for lab in (world.a, world.b) for i in [*lab.ids(), lab.group] if i in answer.text]
        assert not leaks, f"{path} shows {leaks}"


async def test_service_info_is_open_to_anonymous_callers_with_no_counts(world: World) -> None:
    anonymous = await world.http.get(f"{WES}/service-info")
    assert anonymous.status_code == 200
    info = anonymous.json()
    assert info["auth_instructions_url"].endswith("/auth/instructions")
    assert set(info["system_state_counts"].values()) == {0}
    wrong = await world.http.get(f"{WES}/service-info", headers=basic("alice", "not-her-password"))
    assert wrong.status_code == 401, "credentials that fail are still refused"


async def test_metrics_are_for_service_admins(world: World) -> None:
    for method, path in _routes("admin"):
        for who, status in (
            ("member", 403),
            ("group_admin", 403),
            ("other", 403),
            ("anonymous", 401),
            ("service_admin", 200),
        ):
            answer = await world.http.request(method, path, headers=USERS[who])
            assert answer.status_code == status, f"{who} {path}: {answer.status_code}"


async def test_storage_urls_need_their_signature(world: World) -> None:
    for method, path in _routes("capability"):
        for who in ("anonymous", "other", "service_admin"):
            answer = await world.http.request(
                method, path.replace("{token}", "not-a-signed-token"), headers=USERS[who], content=b"x"
            )
            assert answer.status_code in (400, 403, 404), f"{who} {method} {path}: {answer.status_code}"
            assert "lab-a" not in answer.text
