"""The web UI in a real browser: Debian's chromium driven by Playwright for Python.

A real ``flowdeck api`` and ``flowdeck worker`` run on 127.0.0.1 (auth mode basic, SQLite, demo
runs). Playwright's own browser download needs the internet, so the browser is Debian's
``chromium`` (installed by ``make debs``); these tests skip only when it is absent. Each page's
screenshot is written to ``build/browser-screenshots/``.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from flowdeck.db import accounts as db_accounts
from flowdeck.db.migrate import upgrade
from flowdeck.services.core.context import AppContext
from flowdeck.settings import Settings
from tests.support.basic_app import PASSWORD, add_user, basic
from tests.support.network import free_port

playwright_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = next(
    (p for p in ("/usr/lib/chromium/chromium", shutil.which("chromium") or "") if p and os.path.exists(p)), None
)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (make debs)")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "build" / "browser-screenshots"
WES = "/ga4gh/wes/v1"


def _env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWDECK_")}
    return env | {
        "FLOWDECK_DATA_DIR": str(data_dir),
        "FLOWDECK_AUTH_MODE": "basic",
        "FLOWDECK_BACKENDS": "demo",
        "FLOWDECK_WORKER_POLL_SECONDS": "0.1",
        "FLOWDECK_SYNC_MIN_SECONDS": "0.1",
        "FLOWDECK_SYNC_MAX_SECONDS": "0.5",
        "FLOWDECK_DEMO_MIN_SECONDS": "4",
        "FLOWDECK_DEMO_MAX_SECONDS": "4",
        "FLOWDECK_DEMO_SUCCESS_RATE": "1",
    }


async def _accounts(settings: Settings) -> None:
    services = AppContext.create(settings)
    try:
        await add_user(services, "alice", groups={"lab-a": "member"})
        await add_user(services, "bob", groups={"lab-b": "member"})
        await add_user(services, "root", admin=True, groups={"lab-a": "admin"})
    finally:
        await services.close()


@dataclass
class Server:
    url: str
    runs: dict[str, str] = field(default_factory=dict)

    def submit(self, who: str, group: str, description: str, seconds: float) -> str:
        form = {
            "workflow_type": "DEMO",
            "workflow_type_version": "1.0",
            "workflow_url": "demo://browser",
            "research_group": group,
            "description": description,
            "workflow_engine_parameters": f'{{"duration_seconds": "{seconds}"}}',
        }
        answer = httpx.post(f"{self.url}{WES}/runs", data=form, headers=basic(who), timeout=30)
        assert answer.status_code == 200, answer.text
        run_id: str = answer.json()["run_id"]
        return run_id


def _start(tmp: Path, env: dict[str, str], name: str, *argv: str) -> subprocess.Popen[str]:
    log = (tmp / f"{name}.log").open("w")
    return subprocess.Popen(
        [sys.executable, "-m", "flowdeck.cli.main", *argv],
        env=env, cwd=tmp, stdout=log, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("ui-server")
    settings = Settings(data_dir=tmp / "data", auth_mode="basic")
    upgrade(settings)
    with ThreadPoolExecutor(1) as pool:  # Playwright's sync API may already run a loop here
        pool.submit(asyncio.run, _accounts(settings)).result()
    port = free_port()
    env = _env(settings.data_dir)
    procs = [_start(tmp, env, "api", "api", "--port", str(port)), _start(tmp, env, "worker", "worker")]
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert procs[0].poll() is None, (tmp / "api.log").read_text()
            assert time.monotonic() < deadline, "the API did not start"
            try:
                httpx.get(f"{url}/healthz", timeout=2)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        yield Server(url)
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGINT)
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_api.sync_playwright() as driver:
        launched = driver.chromium.launch(executable_path=CHROMIUM, chromium_sandbox=False)
        yield launched
        launched.close()


@dataclass
class Watched:
    """A page with everything it asked for and everything its console said."""

    page: Any
    requests: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)

    def shot(self, name: str) -> None:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


@pytest.fixture
def tab(browser: Any) -> Iterator[Watched]:
    context = browser.new_context()
    page = context.new_page()
    watched = Watched(page)
    page.on("request", lambda request: watched.requests.append(request.url))
    page.on("console", lambda message: watched.console.append(f"{message.type}: {message.text}"))
    page.on("pageerror", lambda error: watched.console.append(f"pageerror: {error}"))
    page.set_default_timeout(20_000)
    yield watched
    context.close()


def sign_in(tab: Watched, server: Server, username: str) -> None:
    tab.page.goto(f"{server.url}/ui/")
    assert "/ui/sign-in" in tab.page.url
    tab.page.get_by_label("Username", exact=True).fill(username)
    tab.page.get_by_label("Password", exact=True).fill(PASSWORD)
    tab.page.get_by_role("button", name="Sign in", exact=True).click()
    tab.page.wait_for_url(f"{server.url}/ui/")


def test_sign_in_watch_a_run_complete_live_then_cancel_another(tab: Watched, server: Server) -> None:
    quick = server.submit("alice", "lab-a", "a quick one", 3)
    slow = server.submit("alice", "lab-a", "a slow one", 600)
    tab.page.goto(f"{server.url}/ui/")
    tab.shot("sign-in")
    sign_in(tab, server, "alice")
    tab.page.evaluate("window.notReloaded = true")
    row = tab.page.locator("tr", has=tab.page.locator(f"a:text-is('{quick}')"))
    row.locator("[data-state='COMPLETE']").wait_for(timeout=60_000)
    assert tab.page.evaluate("window.notReloaded") is True  # htmx swapped the rows in place
    tab.shot("runs")

    tab.page.get_by_role("link", name=slow).click()
    tab.page.wait_for_url(f"{server.url}/ui/runs/{slow}")
    assert tab.page.get_by_text("a slow one").is_visible()
    tab.page.locator("#state-" + slow + "[data-state='RUNNING']").wait_for(timeout=30_000)
    tab.shot("run")
    tab.page.get_by_role("link", name="Cancel this run…").click()
    tab.page.wait_for_url(f"{server.url}/ui/runs/{slow}/cancel")
    tab.shot("confirm-cancel")
    tab.page.get_by_role("button", name="Yes, cancel it").click()
    tab.page.wait_for_url(f"{server.url}/ui/runs/{slow}")
    tab.page.locator("#state-" + slow + "[data-state='CANCELED']").wait_for(timeout=30_000)
    assert tab.page.get_by_text("cancel requested").is_visible()  # the timeline's audit event
    tab.shot("run-canceled")
    server.runs.update(quick=quick, slow=slow)
    _stayed_home(tab, server)


def test_another_group_sees_none_of_it(tab: Watched, server: Server) -> None:
    mine = server.submit("alice", "lab-a", "alice's private run", 600)
    sign_in(tab, server, "bob")
    assert mine not in tab.page.content()
    assert "alice" not in tab.page.locator("main").inner_text()
    tab.page.goto(f"{server.url}/ui/runs/{mine}")
    assert tab.page.get_by_role("heading", name="Not found").is_visible()
    assert "lab-a" not in tab.page.content()
    tab.shot("another-groups-run")
    _stayed_home(tab, server, allow_404=True)


def test_search_the_descriptions(tab: Watched, server: Server) -> None:
    wanted = server.submit("alice", "lab-a", "Zebrafish RNA-seq, batch 7", 600)
    other = server.submit("alice", "lab-a", "mouse exome", 600)
    sign_in(tab, server, "alice")
    tab.page.get_by_label("Description contains").fill("zebrafish")
    tab.page.get_by_role("button", name="Filter").click()
    tab.page.wait_for_url(f"{server.url}/ui/?**text=zebrafish**")
    tab.page.get_by_role("link", name=wanted).wait_for()
    assert tab.page.get_by_role("link", name=other).count() == 0
    tab.shot("runs-search")
    _stayed_home(tab, server)


def test_launch_a_pipeline_from_its_form(tab: Watched, server: Server) -> None:
    sign_in(tab, server, "alice")
    tab.page.get_by_role("link", name="Launch", exact=True).click()
    tab.page.get_by_role("link", name="gatk_variant_calling").click()
    tab.page.get_by_role("link", name="1.0.0").click()  # the simulation: this server runs demo only
    tab.page.get_by_label("sample_id").fill("NA12878")
    tab.page.get_by_label("reference_genome").select_option("hg38")
    tab.page.get_by_label("fastq_r1").fill("s3://lab/NA12878_R1.fastq.gz")
    tab.page.get_by_label("Description").fill("launched from the form")
    tab.page.get_by_role("button", name="Check").click()
    tab.page.locator("#preview").wait_for()
    assert '"sample_id": "NA12878"' in tab.page.locator("#preview").inner_text()
    tab.shot("launch-checked")
    tab.page.get_by_label("sample_id").fill("not a valid id!")
    tab.page.get_by_role("button", name="Launch").click()
    tab.page.locator(".field.invalid #p-sample_id").wait_for()  # the refusal, beside its field
    tab.shot("launch-refused")
    tab.page.get_by_label("sample_id").fill("NA12878")
    tab.page.get_by_role("button", name="Launch").click()
    tab.page.wait_for_url(f"{server.url}/ui/runs/**")
    assert tab.page.get_by_text("launched from the form").is_visible()
    tab.shot("launched")
    # chromium logs the refused form's 422 page as a console error: expected, and only that one.
    refused = [line for line in tab.console if "status of 422" in line]
    assert len(refused) == 1, tab.console
    tab.console[:] = [line for line in tab.console if line not in refused]
    _stayed_home(tab, server)


SHEET = "sample_id,fastq_files\n" + "".join(f"S{i},s3://lab/S{i}_R1.fq.gz;s3://lab/S{i}_R2.fq.gz\n" for i in range(3))


def _sheet_file(text: str) -> dict[str, Any]:
    return {"name": "samples.csv", "mimeType": "text/csv", "buffer": text.encode()}


def test_launch_from_a_sample_sheet_and_watch_its_runs_appear(tab: Watched, server: Server) -> None:
    sign_in(tab, server, "alice")
    tab.page.goto(f"{server.url}/ui/launch/rnaseq_deseq2?version=1.0.0")  # the simulation: demo only here
    tab.page.get_by_role("link", name="Launch from a sample sheet").click()
    tab.page.wait_for_url(f"{server.url}/ui/launch/rnaseq_deseq2/sheet?**")
    tab.page.get_by_label("Sample sheet (CSV or TSV)").set_input_files(_sheet_file(SHEET))
    tab.page.get_by_label("reference", exact=True).select_option("gencode_v44")
    tab.page.get_by_label("Description of the request").fill("three samples from a sheet")
    tab.shot("launch-sheet")
    tab.page.get_by_role("button", name="Submit the sheet").click()
    tab.page.wait_for_url(f"{server.url}/ui/requests/**")
    tab.page.evaluate("window.notReloaded = true")
    for sample in ("S0", "S1", "S2"):  # the worker creates the runs; the page shows them as they come
        tab.page.locator("#request-runs tr", has_text=sample).wait_for(timeout=30_000)
    tab.page.locator("#request-state[data-state='COMPLETE']").wait_for(timeout=60_000)
    assert tab.page.locator("#request-runs [data-state='COMPLETE']").count() == 3
    assert tab.page.evaluate("window.notReloaded") is True  # htmx swapped the progress in place
    tab.shot("request")
    tab.page.locator("#request-runs a").first.click()
    tab.page.wait_for_url(f"{server.url}/ui/runs/**")
    assert "S0" in tab.page.locator("pre.params").inner_text()  # the first sample's run, from row 1
    assert tab.page.locator("a[href^='/ui/requests/']").count() == 1  # and back to its request
    _stayed_home(tab, server)


WATCH_PROGRESS = """() => { const bar = document.getElementById("upload-progress");
    new MutationObserver(() => sessionStorage.setItem("seen", (sessionStorage.getItem("seen") || "") + " "
        + bar.getAttribute("value") + "/" + bar.getAttribute("max"))).observe(bar, {attributes: true}); }"""


def test_upload_a_dataset_with_a_progress_bar(tab: Watched, server: Server) -> None:
    content = os.urandom(3 * 1024 * 1024)
    sign_in(tab, server, "alice")
    tab.page.get_by_role("link", name="Datasets", exact=True).click()
    tab.page.wait_for_url(f"{server.url}/ui/datasets")  # the bar to watch is on that page
    tab.page.locator("#upload-progress").wait_for(state="attached")
    tab.page.evaluate(WATCH_PROGRESS)
    form = tab.page.get_by_role("form", name="Upload a dataset")
    form.get_by_label("File", exact=True).set_input_files(
        {"name": "reads.bin", "mimeType": "application/octet-stream", "buffer": content}
    )
    form.get_by_label("Name", exact=True).fill("uploaded from the browser")
    form.get_by_role("button", name="Upload", exact=True).click()
    tab.page.wait_for_url(f"{server.url}/ui/datasets?name=uploaded+from+the+browser")
    tab.shot("datasets-uploaded")
    seen = (tab.page.evaluate("sessionStorage.getItem('seen')") or "").split()
    assert seen[-1:] == [f"{len(content)}/{len(content)}"], seen  # the bar moved, and ended full
    assert any(url.startswith(f"{server.url}/storage/") for url in tab.requests)  # the pre-signed PUT
    listed = httpx.get(f"{server.url}/datasets", params={"name": "uploaded from the browser"}, headers=basic("alice"))
    [dataset] = listed.json()["datasets"]
    assert (dataset["size"], dataset["pending_upload"]) == (len(content), False)
    assert httpx.get(dataset["download_url"], timeout=30).content == content
    _stayed_home(tab, server)


def test_the_overview_charts_the_runs(tab: Watched, server: Server) -> None:
    server.submit("alice", "lab-a", "charted", 600)
    sign_in(tab, server, "alice")
    tab.page.get_by_role("link", name="Overview", exact=True).click()
    tab.page.wait_for_url(f"{server.url}/ui/overview")
    assert tab.page.get_by_role("img", name="Runs by state, your groups").is_visible()
    assert tab.page.get_by_role("img", name="Runs created per day (UTC), your groups").is_visible()
    tab.page.get_by_label("Research group", exact=True).select_option("lab-a")
    tab.page.get_by_role("button", name="Show").click()
    tab.page.wait_for_url(f"{server.url}/ui/overview?group=lab-a")
    tab.page.get_by_role("img", name="Runs by state, lab-a").wait_for()
    tab.shot("overview")
    _stayed_home(tab, server)


def test_the_api_pages_work_offline(tab: Watched, server: Server) -> None:
    answered: list[str] = []
    tab.page.on("response", lambda response: answered.append(response.url))
    tab.page.goto(f"{server.url}/docs")
    tab.page.locator("#swagger-ui .info .title", has_text="flowdeck").wait_for()
    tab.page.locator("#swagger-ui .opblock").first.wait_for()  # the operations, read from /openapi.json
    tab.shot("docs-swagger")
    tab.page.goto(f"{server.url}/ga4gh/wes/v1/redoc")
    tab.page.get_by_role("heading", name="flowdeck", exact=False).first.wait_for()
    tab.page.locator("[data-section-id]").first.wait_for()
    tab.shot("docs-redoc")
    # ReDoc's own "powered by" logo from cdn.redoc.ly is refused by the page's CSP, by design:
    # chromium reports the attempt, but nothing was answered from outside.
    assert [url for url in answered if not url.startswith(f"{server.url}/")] == []
    assert any("cdn.redoc.ly" in line and "Content Security Policy" in line for line in tab.console), tab.console
    tab.console[:] = [line for line in tab.console if "cdn.redoc.ly" not in line]
    tab.requests[:] = [url for url in tab.requests if not url.startswith("https://cdn.redoc.ly/")]
    _stayed_home(tab, server)


AXE = Path(__file__).resolve().parents[1] / "support" / "oidc_provider" / "node_modules" / "axe-core" / "axe.min.js"
AXE_RUN = """async () => (await axe.run(document, {resultTypes: ["violations"]})).violations.map(
    v => `${v.id} (${v.impact}): ${v.help}; ${v.nodes.map(n => n.target.join(" ")).join(", ")}`)"""


@pytest.mark.skipif(not AXE.exists(), reason="axe-core is not installed (make node)")
def test_every_page_passes_axe_core(browser: Any, server: Server) -> None:
    """axe-core (WCAG 2 A and AA rules, best practices) finds nothing on any page: signed out, a
    service admin's view of each page, a form refused beside its field, and an error page."""
    run = server.submit("root", "lab-a", "checked by axe", 600)
    batch = {"pipeline_name": "rnaseq_deseq2", "pipeline_version": "1.0.0", "research_group": "lab-a"}
    batch |= {"parameters": {"reference": "gencode_v44"}, "samplesheet": SHEET}
    made = httpx.post(f"{server.url}/requests", json=batch, headers=basic("root"), timeout=30)
    assert made.status_code == 202, made.text
    request_id = made.json()["request_id"]
    # axe is injected as a script the page's CSP would refuse: this context alone bypasses it.
    context = browser.new_context(bypass_csp=True)
    page = context.new_page()
    page.set_default_timeout(20_000)
    found: dict[str, list[str]] = {}

    def check(name: str) -> None:
        page.add_script_tag(path=str(AXE))
        found[name] = page.evaluate(AXE_RUN)

    try:
        page.goto(f"{server.url}/ui/sign-in")
        check("sign-in")
        page.get_by_label("Username", exact=True).fill("root")
        page.get_by_label("Password", exact=True).fill(PASSWORD)
        page.get_by_role("button", name="Sign in", exact=True).click()
        page.wait_for_url(f"{server.url}/ui/")
        for name, path in [
            ("runs", "/ui/"),
            ("run", f"/ui/runs/{run}"),
            ("cancel", f"/ui/runs/{run}/cancel"),
            ("launch-list", "/ui/launch"),
            ("launch-form", "/ui/launch/gatk_variant_calling?version=1.0.0"),
            ("datasets", "/ui/datasets"),
            ("overview", "/ui/overview"),
            ("admin", "/ui/admin"),
            ("not-found", "/ui/runs/no-such-run"),
            ("launch-sheet", "/ui/launch/rnaseq_deseq2/sheet?version=1.0.0"),
            ("requests", "/ui/requests"),
            ("request", f"/ui/requests/{request_id}"),
            ("request-cancel", f"/ui/requests/{request_id}/cancel"),
        ]:
            page.goto(f"{server.url}{path}")
            check(name)
        page.goto(f"{server.url}/ui/launch/gatk_variant_calling?version=1.0.0")
        page.get_by_label("sample_id").fill("not a valid id!")
        page.get_by_label("reference_genome").select_option("hg38")
        page.get_by_label("fastq_r1").fill("s3://lab/NA12878_R1.fastq.gz")
        page.get_by_role("button", name="Launch").click()
        page.locator(".field.invalid").first.wait_for()
        check("launch-refused")
        page.goto(f"{server.url}/ui/launch/rnaseq_deseq2/sheet?version=1.0.0")
        page.get_by_label("Sample sheet (CSV or TSV)").set_input_files(_sheet_file("sample_id,colour\nnot ok!,red\n"))
        page.get_by_role("button", name="Submit the sheet").click()
        page.locator("#sheet-problems").wait_for()
        check("sheet-refused")
        page.goto(f"{server.url}/ui/datasets")
        page.get_by_label("Dataset name").fill("reads")
        page.get_by_label("URI", exact=True).fill("ftp://example.org/reads.fq")
        page.get_by_role("button", name="Register").click()
        page.locator("#register-uri .field.invalid").wait_for()
        check("register-refused")
    finally:
        context.close()
    assert {name: problems for name, problems in found.items() if problems} == {}


def _stayed_home(tab: Watched, server: Server, *, allow_404: bool = False) -> None:
    """No request left 127.0.0.1 and the console reported no CSP violation nor any error."""
    away = [url for url in tab.requests if not url.startswith(f"{server.url}/")]
    assert away == [], away
    errors = [line for line in tab.console if line.startswith(("error", "pageerror"))]
    if allow_404:  # chromium logs the 404 page's own status as a console error
        errors = [line for line in errors if "status of 404" not in line]
    assert errors == [], errors
    assert not any("Content Security Policy" in line for line in tab.console), tab.console


OIDC_PROVIDER = Path(__file__).resolve().parents[1] / "support" / "oidc_provider"
OIDC_SECRET = "browser-test-client-secret"


def _wait_for(url: str, proc: subprocess.Popen[str], log: Path) -> None:
    deadline = time.monotonic() + 60
    while True:
        assert proc.poll() is None, log.read_text()
        assert time.monotonic() < deadline, f"{url} did not answer"
        try:
            httpx.get(url, timeout=2)
            return
        except httpx.TransportError:
            time.sleep(0.2)


@pytest.fixture(scope="module")
def oidc_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A real OIDC provider (npm's oidc-provider under node) and a flowdeck API in mode oidc."""
    node = shutil.which("node")
    if node is None or not (OIDC_PROVIDER / "node_modules" / "oidc-provider").is_dir():
        pytest.skip("node or npm's oidc-provider is missing (make install runs npm ci)")
    tmp = tmp_path_factory.mktemp("ui-oidc")
    settings = Settings(data_dir=tmp / "data")
    upgrade(settings)
    idp_port, port = free_port(), free_port()
    issuer, url = f"http://127.0.0.1:{idp_port}", f"http://127.0.0.1:{port}"
    accounts = json.dumps({"carol": ["lab-c"]})
    idp_argv = [node, "server.mjs", str(idp_port), f"{url}/ui/oidc/callback", OIDC_SECRET, accounts]
    env = _env(settings.data_dir) | {
        "FLOWDECK_AUTH_MODE": "oidc",
        "FLOWDECK_OIDC_ISSUER": issuer,
        "FLOWDECK_OIDC_AUDIENCE": "flowdeck-api",
        "FLOWDECK_OIDC_UI_CLIENT_ID": "flowdeck-ui",
        "FLOWDECK_OIDC_UI_CLIENT_SECRET": OIDC_SECRET,
        "FLOWDECK_OIDC_UI_SCOPES": "openid profile groups",
    }
    idp_log = (tmp / "idp.log").open("w")
    procs = [
        subprocess.Popen(idp_argv, cwd=OIDC_PROVIDER, stdout=idp_log, stderr=subprocess.STDOUT, text=True),
        _start(tmp, env, "api", "api", "--port", str(port)),
    ]
    try:
        _wait_for(f"{issuer}/.well-known/openid-configuration", procs[0], tmp / "idp.log")
        _wait_for(f"{url}/healthz", procs[1], tmp / "api.log")
        yield Server(url, runs={"issuer": issuer, "data_dir": str(settings.data_dir)})
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGINT)
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


async def _groups_of(data_dir: Path, username: str) -> dict[str, str]:
    services = AppContext.create(Settings(data_dir=data_dir))
    try:
        async with services.db.read() as conn:
            user = await db_accounts.get_user(conn, username)
            assert user is not None
            return {name: str(role) for name, role in (await db_accounts.user_groups(conn, user.id)).items()}
    finally:
        await services.close()


def test_oidc_sign_in_with_code_and_pkce_at_a_real_provider(tab: Watched, oidc_server: Server) -> None:
    issuer = oidc_server.runs["issuer"]
    # The provider's own development pages @import a web font: the browser stays on loopback.
    tab.page.context.route("**/*", lambda route: route.continue_() if route.request.url.startswith(
        ("http://127.0.0.1:", "data:")) else route.abort())  # fmt: skip
    tab.page.goto(f"{oidc_server.url}/ui/?state=completed")
    assert "/ui/sign-in" in tab.page.url
    tab.shot("sign-in-oidc")
    tab.page.get_by_role("link", name="Sign in with your organisation").click()
    tab.page.wait_for_url(f"{issuer}/**")
    authorize = next(u for u in tab.requests if u.startswith(f"{issuer}/auth?"))
    assert "code_challenge_method=S256" in authorize
    assert "code_challenge=" in authorize
    tab.page.locator("input[name=login]").fill("carol")
    tab.page.locator("input[name=password]").fill("anything")
    tab.page.get_by_role("button", name="Sign-in").click()
    tab.page.get_by_role("button", name="Continue").click()  # the provider's consent page
    tab.page.wait_for_url(f"{oidc_server.url}/ui/**")
    assert tab.page.url.endswith("/ui/?state=completed")  # back where the sign-in began
    assert tab.page.get_by_text("Signed in as carol (lab-c)").is_visible()
    tab.shot("signed-in-oidc")
    with ThreadPoolExecutor(1) as pool:
        groups = pool.submit(asyncio.run, _groups_of(Path(oidc_server.runs["data_dir"]), "carol")).result()
    assert groups == {"lab-c": "member"}
    home = [u for u in tab.requests if u.startswith(f"{oidc_server.url}/")]
    assert home  # and everything else went to the provider only (the font was refused above)
    away = [u for u in tab.requests if not u.startswith((f"{oidc_server.url}/", f"{issuer}/"))]
    assert all("fonts.googleapis.com" in u for u in away), away
    assert not any("Content Security Policy" in line for line in tab.console), tab.console


def test_an_oidc_answer_without_this_browsers_sign_in_is_refused(oidc_server: Server) -> None:
    answer = httpx.get(f"{oidc_server.url}/ui/oidc/callback", params={"code": "c", "state": "s"}, timeout=10)
    assert answer.status_code == 401
    assert "was not started in this browser" in answer.text
    assert "fd_session" not in answer.headers.get("set-cookie", "")
