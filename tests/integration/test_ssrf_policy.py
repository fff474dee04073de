"""The SSRF policy (docs/ssrf.md): URLs given by clients never lead the service inside the site.

Names are answered through ``url_policy.resolve``, the module's resolver seam, with an address of
each forbidden range; fetches are real HTTP against a server on 127.0.0.1 that the operator's
allowlist covers, including a redirect from it to forbidden addresses.
"""

from __future__ import annotations

import ipaddress
import json
import threading
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest

from flowdeck.api.app import create_app
from flowdeck.db.migrate import upgrade
from flowdeck.domain.principal import LOCAL_USER
from flowdeck.errors import InvalidInput
from flowdeck.services.core import url_policy
from flowdeck.services.core.context import AppContext
from flowdeck.services.datasets import service as dataset_service
from flowdeck.services.runs import service as run_service
from flowdeck.settings import Settings
from flowdeck.worker.loop import Worker
from tests.conftest import make_settings
from tests.integration.test_wes_api import WES

WORKFLOW = (Path(__file__).parents[1] / "workflows" / "cwl" / "two_step.cwl").read_bytes()
NAMES = {
    "metadata.example": "169.254.169.254",
    "loopback.example": "127.0.0.1",
    "private.example": "10.20.30.40",
    "ula.example": "fd00::5",
    "cgnat.example": "100.64.1.1",
    "linklocal.example": "169.254.3.3",
    "mapped.example": "::ffff:192.168.0.9",
    "public.example": "93.184.216.34",
    "wf.example": "127.0.0.1",
}


@pytest.fixture(autouse=True)
def resolver(monkeypatch: pytest.MonkeyPatch) -> None:
    def answer(host: str, port: int) -> list[url_policy.Address]:
        if host not in NAMES:
            raise OSError(f"no such host {host}")
        return [ipaddress.ip_address(NAMES[host])]

    monkeypatch.setattr(url_policy, "resolve", answer)


class _Handler(BaseHTTPRequestHandler):
    redirects: ClassVar[dict[str, str]] = {}
    hosts: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.hosts.append(self.headers.get("Host", ""))
        if self.path in self.redirects:
            self.send_response(302)
            self.send_header("Location", self.redirects[self.path])
            self.end_headers()
            return
        if self.path != "/two_step.cwl":
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(WORKFLOW)))
        self.end_headers()
        self.wfile.write(WORKFLOW)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    _Handler.hosts.clear()
    try:
        yield f"127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def _settings(tmp_path: Path, **extra: Any) -> Settings:
    return make_settings(tmp_path, **extra)


@pytest.mark.parametrize("host", [h for h in NAMES if h not in ("public.example", "wf.example")])
def test_a_name_that_resolves_inside_is_refused(tmp_path: Path, host: str) -> None:
    with pytest.raises(InvalidInput, match="SSRF policy refuses it") as caught:
        url_policy.check_url(_settings(tmp_path), f"https://{host}/wf.cwl", what="workflow_url")
    assert NAMES[host] in caught.value.detail or str(ipaddress.ip_address(NAMES[host])) in caught.value.detail


@pytest.mark.parametrize(
    "url",
    ["https://169.254.169.254/latest/meta-data.cwl", "http://[::1]:8000/x", "http://0.0.0.0/", "http://10.0.0.1/"],
)
def test_literal_addresses_are_judged_too(tmp_path: Path, url: str) -> None:
    with pytest.raises(InvalidInput, match="SSRF policy"):
        url_policy.check_url(_settings(tmp_path), url, what="workflow_url")


def test_public_names_pass_and_the_allowlist_opens_hosts_and_networks(tmp_path: Path) -> None:
    assert url_policy.check_url(_settings(tmp_path), "https://public.example/a", what="x").address == (
        ipaddress.ip_address("93.184.216.34")
    )
    by_name = _settings(tmp_path, outbound_allowlist=["private.example"])
    url_policy.check_url(by_name, "https://private.example/a", what="x")
    by_network = _settings(tmp_path, outbound_allowlist=["10.20.0.0/16"])
    url_policy.check_url(by_network, "https://private.example/a", what="x")
    with pytest.raises(InvalidInput):
        url_policy.check_url(by_network, "https://cgnat.example/a", what="x")
    with pytest.raises(InvalidInput, match="cannot be resolved"):
        url_policy.check_url(by_network, "https://nowhere.example/a", what="x")
    with pytest.raises(InvalidInput, match="only http"):
        url_policy.check_url(by_network, "ftp://public.example/a", what="x")


def test_fetch_connects_to_the_checked_address_with_the_name_as_host(tmp_path: Path, server: str) -> None:
    port = server.split(":")[1]
    settings = _settings(tmp_path, outbound_allowlist=["127.0.0.0/8"])
    body = url_policy.fetch(settings, f"http://wf.example:{port}/two_step.cwl", what="workflow_url", max_bytes=10**6)
    assert body == WORKFLOW
    assert _Handler.hosts == [f"wf.example:{port}"]
    with pytest.raises(InvalidInput, match="larger than 10 bytes"):
        url_policy.fetch(settings, f"http://{server}/two_step.cwl", what="workflow_url", max_bytes=10)
    with pytest.raises(InvalidInput, match="answered 404"):
        url_policy.fetch(settings, f"http://{server}/missing", what="workflow_url", max_bytes=10**6)


def test_without_the_allowlist_loopback_is_refused(tmp_path: Path, server: str) -> None:
    with pytest.raises(InvalidInput, match="loopback"):
        url_policy.fetch(_settings(tmp_path), f"http://{server}/two_step.cwl", what="workflow_url", max_bytes=10**6)
    assert _Handler.hosts == []


@pytest.mark.parametrize(
    "location", ["http://169.254.169.254/latest/meta-data/", "http://private.example/", "http://[::ffff:10.0.0.1]/"]
)
def test_each_redirect_hop_is_checked(tmp_path: Path, server: str, location: str) -> None:
    _Handler.redirects["/hop"] = location
    settings = _settings(tmp_path, outbound_allowlist=["127.0.0.1"])
    with pytest.raises(InvalidInput, match="SSRF policy"):
        url_policy.fetch(settings, f"http://{server}/hop", what="workflow_url", max_bytes=10**6)
    assert len(_Handler.hosts) == 1  # the first hop only: nothing was sent to the forbidden one


@pytest.fixture
async def cwl_api(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """The app with cwltool enabled, remote workflows from wf.example, and 127.0.0.1 allowlisted."""
    pytest.importorskip("cwltool")
    settings = make_settings(
        tmp_path,
        backends=["cwltool"],
        allowed_workflow_url_prefixes=["https://", "http://wf.example:"],
        outbound_allowlist=["127.0.0.1"],
    )
    upgrade(settings)
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client,
    ):
        yield client


async def test_wes_refuses_a_workflow_url_inside_the_site_and_stores_nothing(cwl_api: httpx.AsyncClient) -> None:
    form = {"workflow_type": "CWL", "workflow_type_version": "v1.2"}
    for url in ("https://169.254.169.254/latest/meta-data.cwl", "https://metadata.example/wf.cwl"):
        answer = await cwl_api.post(f"{WES}/runs", data={**form, "workflow_url": url})
        assert answer.status_code == 400, answer.text
        assert "SSRF policy refuses it" in answer.json()["msg"]
        assert "169.254.169.254, a cloud metadata address" in answer.json()["msg"]
    assert (await cwl_api.get(f"{WES}/runs")).json()["runs"] == []


async def test_a_dataset_uri_inside_the_site_is_refused(api: httpx.AsyncClient) -> None:
    for host in ("metadata.example", "private.example", "169.254.169.254"):
        answer = await api.post("/datasets", json={"name": "x", "uri": f"https://{host}/reads.fq"})
        assert answer.status_code == 422, answer.text
        assert [e["pointer"] for e in answer.json()["errors"]] == ["/uri"]
    ok = await api.post("/datasets", json={"name": "x", "uri": "https://public.example/reads.fq"})
    assert ok.status_code == 201, ok.text
    # A name that does not resolve here reaches nothing from here (Galaxy may sit elsewhere).
    offline = await api.post("/datasets", json={"name": "x", "uri": "https://nowhere.example/reads.fq"})
    assert offline.status_code == 201, offline.text


async def test_a_reference_that_resolves_inside_by_dispatch_time_fails_the_run(
    api: httpx.AsyncClient, services: AppContext
) -> None:
    """DNS may change between registration and dispatch: the worker checks the inputs again."""
    NAMES["moving.example"] = "93.184.216.34"
    try:
        dataset = await api.post("/datasets", json={"name": "x", "uri": "https://moving.example/reads.fq"})
        assert dataset.status_code == 201, dataset.text
        row = await dataset_service.get_visible(services, dataset.json()["id"], LOCAL_USER)
        new = run_service.NewRun(
            workflow_type="DEMO",
            workflow_type_version="1.0",
            workflow_url="demo://x",
            dataset_id=row.id,
            dataset=dataset_service.run_reference(services, row),
        )
        run_id = await run_service.submit(services, new, LOCAL_USER)
        NAMES["moving.example"] = "169.254.169.254"
        worker = Worker(services)
        for _ in range(50):
            await worker.iterate()
            log = (await api.get(f"{WES}/runs/{run_id}")).json()
            if log["state"] not in ("QUEUED", "INITIALIZING"):
                break
        assert log["state"] == "EXECUTOR_ERROR", log
        assert "SSRF policy refuses it" in json.dumps(log)
    finally:
        NAMES.pop("moving.example", None)


async def test_a_remote_workflow_is_fetched_once_and_kept_with_the_run(cwl_api: httpx.AsyncClient, server: str) -> None:
    port = server.split(":")[1]
    form = {"workflow_type": "CWL", "workflow_type_version": "v1.2", "workflow_params": json.dumps({"message": "hi"})}
    answer = await cwl_api.post(f"{WES}/runs", data={**form, "workflow_url": f"http://wf.example:{port}/two_step.cwl"})
    assert answer.status_code == 200, answer.text
    run_id = answer.json()["run_id"]
    run = (await cwl_api.get(f"{WES}/runs/{run_id}")).json()
    assert run["request"]["workflow_url"] == "two_step.cwl"
    assert _Handler.hosts == [f"wf.example:{port}"]
    events = (await cwl_api.get(f"/jobs/{run_id}/events")).json()["events"]
    assert f"workflow fetched from http://wf.example:{port}/two_step.cwl" in events[0]["reason"]
