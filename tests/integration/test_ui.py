"""The web UI over HTTP (docs/ui.md, docs/adr/0016): sign-in, the session cookie, CSRF refusals,
security headers, and research-group isolation of the runs pages, in auth mode ``basic``."""

from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncIterator
from importlib.resources import files
from pathlib import Path

import httpx
import pytest

from flowdeck.api.ui.assets import HTMX
from flowdeck.db import accounts
from flowdeck.db.migrate import upgrade
from flowdeck.services.core.context import AppContext
from flowdeck.settings import Settings
from flowdeck.worker.loop import Worker
from tests.conftest import make_settings
from tests.support.basic_app import PASSWORD, add_user, basic, basic_app, basic_settings

WES = "/ga4gh/wes/v1"
HTMX_SHA256 = "d6fdc75f204e6bdefa99b69bf1e6d4ac69b8a364f77929f45c13476b4000f717"
DEMO_RUN = {"workflow_type": "DEMO", "workflow_type_version": "1.0", "workflow_url": "demo://hello"}


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "the page has no CSRF field"
    return found.group(1)


async def sign_in(http: httpx.AsyncClient, username: str, password: str = PASSWORD) -> httpx.Response:
    page = await http.get("/ui/sign-in")
    form = {"csrf": csrf_of(page.text), "username": username, "password": password, "next": "/ui/"}
    return await http.post("/ui/sign-in", data=form)


async def submit(http: httpx.AsyncClient, who: str, group: str, description: str) -> str:
    form = {**DEMO_RUN, "research_group": group, "tags": '{"project": "p1"}', "description": description}
    answer = await http.post(f"{WES}/runs", data=form, headers=basic(who))
    assert answer.status_code == 200, answer.text
    run_id: str = answer.json()["run_id"]
    return run_id


@pytest.fixture
async def lab(db_settings: Settings) -> AsyncIterator[tuple[AppContext, httpx.AsyncClient, dict[str, str]]]:
    async with basic_app(basic_settings(db_settings)) as (_, services, http):
        await add_user(services, "alice", groups={"lab-a": "member"})
        await add_user(services, "bob", groups={"lab-b": "member"})
        runs = {
            "alice": await submit(http, "alice", "lab-a", "alice's secret experiment"),
            "bob": await submit(http, "bob", "lab-b", "bob's pilot"),
        }
        yield services, http, runs


async def test_the_root_and_ui_without_a_slash_lead_to_the_runs_page(
    lab: tuple[AppContext, httpx.AsyncClient, dict[str, str]],
) -> None:
    _, http, _ = lab
    assert (await http.get("/")).headers["location"] == "/ui/"
    assert (await http.get("/ui")).headers["location"] == "/ui/"


async def test_a_browser_without_a_session_is_sent_to_sign_in(
    lab: tuple[AppContext, httpx.AsyncClient, dict[str, str]],
) -> None:
    _, http, runs = lab
    page = await http.get(f"/ui/runs/{runs['alice']}")
    assert page.status_code == 303
    assert page.headers["location"] == f"/ui/sign-in?next=%2Fui%2Fruns%2F{runs['alice']}"
    poll = await http.get("/ui/rows", headers={"HX-Request": "true"})
    assert (poll.status_code, poll.headers["hx-redirect"]) == (204, "/ui/sign-in")
    # The API's own Basic header is not a browser session: the UI asks for its sign-in.
    assert (await http.get("/ui/", headers=basic("alice"))).status_code == 303


async def test_password_sign_in_sets_a_signed_httponly_samesite_cookie(
    lab: tuple[AppContext, httpx.AsyncClient, dict[str, str]],
) -> None:
    _, http, runs = lab
    answer = await sign_in(http, "alice")
    assert (answer.status_code, answer.headers["location"]) == (303, "/ui/")
    cookie = next(c for c in answer.headers.get_list("set-cookie") if c.startswith("fd_session="))
    attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
    assert {"httponly", "path", "max-age"} <= attributes
    assert "samesite=lax" in cookie.lower()
    assert "secure" not in attributes  # plain http here: a Secure cookie would never come back
    page = await http.get("/ui/")
    assert page.status_code == 200
    assert "Signed in as <strong>alice</strong>" in page.text
    assert runs["alice"] in page.text


async def test_the_cookie_is_secure_over_https(lab: tuple[AppContext, httpx.AsyncClient, dict[str, str]]) -> None:
    _, http, _ = lab
    secure = httpx.AsyncClient(transport=http._transport, base_url="https://testserver")
    async with secure:
        answer = await sign_in(secure, "alice")
    cookies = answer.headers.get_list("set-cookie")
    assert any(c.startswith("fd_session=") and "; secure" in c.lower() for c in cookies), cookies


async def test_a_wrong_password_signs_nobody_in(lab: tuple[AppContext, httpx.AsyncClient, dict[str, str]]) -> None:
    _, http, _ = lab
    answer = await sign_in(http, "alice", "not the password")
    assert answer.status_code == 401
    assert "invalid username or password" in answer.text
    assert "not the password" not in answer.text
    assert not any(c.startswith("fd_session=") for c in answer.headers.get_list("set-cookie"))
    assert (await http.get("/ui/")).status_code == 303


async def test_an_api_token_signs_in(lab: tuple[AppContext, httpx.AsyncClient, dict[str, str]]) -> None:
    _, http, runs = lab
    made = await http.post("/tokens", json={"name": "browser"}, headers=basic("bob"))
    token = made.json()["token"]
    page = await http.get("/ui/sign-in")
    answer = await http.post("/ui/sign-in", data={"csrf": csrf_of(page.text), "token": token})
    assert answer.status_code == 303
    listed = await http.get("/ui/")
    assert runs["bob"] in listed.text
    revoked = await http.post("/ui/sign-in", data={"csrf": csrf_of(page.text), "token": "fd_00000000_" + "x" * 43})
    assert revoked.status_code == 401


async def test_a_session_made_from_a_token_ends_when_the_token_is_revoked(
    lab: tuple[AppContext, httpx.AsyncClient, dict[str, str]],
) -> None:
    _, http, runs = lab
    made = (await http.post("/tokens", json={"name": "browser"}, headers=basic("bob"))).json()
    page = await http.get("/ui/sign-in")
    await http.post("/ui/sign-in", data={"csrf": csrf_of(page.text), "token": made["token"]})
    assert runs["bob"] in (await http.get("/ui/")).text
    assert (await http.delete(f"/tokens/{made['id']}", headers=basic("bob"))).status_code == 200
    gone = await http.get("/ui/")
    assert gone.status_code == 303
    assert gone.headers["location"].startswith("/ui/sign-in")
    assert (await http.get(f"/ui/runs/{runs['bob']}")).status_code == 303


async def test_forms_without_the_right_csrf_token_are_refused(
    lab: tuple[AppContext, httpx.AsyncClient, dict[str, str]],
) -> None:
    services, http, runs = lab
    await sign_in(http, "alice")
    token = csrf_of((await http.get(f"/ui/runs/{runs['alice']}/cancel")).text)
    cancel = f"/ui/runs/{runs['alice']}/cancel"
    assert (await http.post(cancel, data={})).status_code == 403
    assert (await http.post(cancel, data={"csrf": token + "x"})).status_code == 403
    for origin in ("https://evil.example", "null", "http://testserver.evil.example"):
        assert (await http.post(cancel, data={"csrf": token}, headers={"Origin": origin})).status_code == 403
    # A token of another browser (another CSRF cookie) does not pass either.
    other = httpx.AsyncClient(transport=http._transport, base_url="http://testserver")
    async with other:
        foreign = csrf_of((await other.get("/ui/sign-in")).text)
    assert (await http.post(cancel, data={"csrf": foreign})).status_code == 403
    status = await http.get(f"{WES}/runs/{runs['alice']}/status", headers=basic("alice"))
    assert status.json()["state"] == "QUEUED"
    # The sign-in form is protected too (login CSRF).
    fresh = httpx.AsyncClient(transport=http._transport, base_url="http://testserver")
    async with fresh:
        refused = await fresh.post("/ui/sign-in", data={"username": "alice", "password": PASSWORD})
    assert refused.status_code == 403
    assert services is not None


async def test_cancel_asks_first_then_cancels(lab: tuple[AppContext, httpx.AsyncClient, dict[str, str]]) -> None:
    _, http, runs = lab
    await sign_in(http, "alice")
    confirm = await http.get(f"/ui/runs/{runs['alice']}/cancel")
    assert confirm.status_code == 200
    assert "Yes, cancel it" in confirm.text
    # Behind nginx, Host has no port while the browser's Origin keeps it: the same site.
    origin = {"Origin": "https://testserver:8443"}
    done = await http.post(f"/ui/runs/{runs['alice']}/cancel", data={"csrf": csrf_of(confirm.text)}, headers=origin)
    assert (done.status_code, done.headers["location"]) == (303, f"/ui/runs/{runs['alice']}")
    status = await http.get(f"{WES}/runs/{runs['alice']}/status", headers=basic("alice"))
    assert status.json()["state"] in ("CANCELING", "CANCELED")
    page = await http.get(f"/ui/runs/{runs['alice']}")
    assert "cancel requested" in page.text  # the timeline shows the audit event


async def test_rerun_makes_a_linked_run(lab: tuple[AppContext, httpx.AsyncClient, dict[str, str]]) -> None:
    _, http, runs = lab
    await sign_in(http, "alice")
    confirm = await http.get(f"/ui/runs/{runs['alice']}/rerun")
    done = await http.post(f"/ui/runs/{runs['alice']}/rerun", data={"csrf": csrf_of(confirm.text)})
    assert done.status_code == 303
    new_id = done.headers["location"].rsplit("/", 1)[1]
    assert new_id != runs["alice"]
    job = (await http.get(f"/jobs/{new_id}", headers=basic("alice"))).json()
    assert job["rerun_of"] == runs["alice"]
    assert job["research_group"] == "lab-a"


async def test_a_resumed_rerun_goes_to_the_jobs_service(
    lab: tuple[AppContext, httpx.AsyncClient, dict[str, str]],
) -> None:
    services, http, runs = lab
    await sign_in(http, "alice")
    confirm = await http.get(f"/ui/runs/{runs['alice']}/rerun")
    assert 'name="resume"' not in confirm.text  # offered for ended runs only
    refused = await http.post(f"/ui/runs/{runs['alice']}/rerun", data={"csrf": csrf_of(confirm.text), "resume": "on"})
    assert refused.status_code == 409
    assert "only an ended run can be resumed" in refused.text
    # Ended, on an engine that cannot re-use steps (demo): still not offered, and refused if forced.
    cancel = await http.get(f"/ui/runs/{runs['alice']}/cancel")
    await http.post(f"/ui/runs/{runs['alice']}/cancel", data={"csrf": csrf_of(cancel.text)})
    worker = Worker(services)
    status = f"{WES}/runs/{runs['alice']}/status"
    for _ in range(100):
        if (await http.get(status, headers=basic("alice"))).json()["state"] == "CANCELED":
            break
        await worker.iterate()
    ended = await http.get(f"/ui/runs/{runs['alice']}/rerun")
    assert (await http.get(status, headers=basic("alice"))).json()["state"] == "CANCELED"
    assert 'name="resume"' not in ended.text
    forced = await http.post(f"/ui/runs/{runs['alice']}/rerun", data={"csrf": csrf_of(ended.text), "resume": "on"})
    assert forced.status_code == 422
    assert "cannot re-use the finished steps" in forced.text


async def test_bob_never_sees_alices_run(lab: tuple[AppContext, httpx.AsyncClient, dict[str, str]]) -> None:
    _, http, runs = lab
    await sign_in(http, "bob")
    for url in ("/ui/", "/ui/rows", "/ui/?group=lab-a", "/ui/?tag=project:p1", "/ui/?state=queued"):
        page = await http.get(url)
        assert page.status_code == 200, url
        assert runs["alice"] not in page.text, url
        assert "secret experiment" not in page.text, url
    assert runs["bob"] in (await http.get("/ui/")).text
    ghost = "0" * len(runs["alice"])
    for tail in ("", "/state", "/cancel", "/rerun", "/logs/stdout", "/outputs/0"):
        hidden = await http.get(f"/ui/runs/{runs['alice']}{tail}")
        missing = await http.get(f"/ui/runs/{ghost}{tail}")
        assert hidden.status_code == 404, tail
        assert hidden.text.replace(runs["alice"], "ID") == missing.text.replace(ghost, "ID"), tail
        assert "lab-a" not in hidden.text
        assert "alice" not in hidden.text
    token = csrf_of((await http.get("/ui/")).text)
    for action in ("cancel", "rerun"):
        refused = await http.post(f"/ui/runs/{runs['alice']}/{action}", data={"csrf": token})
        assert refused.status_code == 404
    status = await http.get(f"{WES}/runs/{runs['alice']}/status", headers=basic("alice"))
    assert status.json()["state"] == "QUEUED"
    listed = await http.get("/jobs", headers=basic("alice"))
    assert listed.json()["total"] == 1  # bob's rerun attempt made nothing


async def test_a_disabled_account_loses_its_session(lab: tuple[AppContext, httpx.AsyncClient, dict[str, str]]) -> None:
    services, http, _ = lab
    await sign_in(http, "alice")
    assert (await http.get("/ui/")).status_code == 200
    async with services.db.write() as conn:
        user = await accounts.get_user(conn, "alice")
        assert user is not None
        await accounts.update_user(conn, user.id, disabled=True)
    assert (await http.get("/ui/")).status_code == 303


async def test_a_tampered_session_cookie_is_no_session(
    lab: tuple[AppContext, httpx.AsyncClient, dict[str, str]],
) -> None:
    _, http, _ = lab
    answer = await sign_in(http, "bob")
    value = next(c for c in answer.headers.get_list("set-cookie") if c.startswith("fd_session=")).split(";")[0]
    payload, _, signature = value.removeprefix("fd_session=").partition(".")
    bare = httpx.AsyncClient(transport=http._transport, base_url="http://testserver")
    async with bare:
        assert (await bare.get("/ui/", headers={"Cookie": value})).status_code == 200
        other_claims = payload[:-2] + ("AA" if payload[-2:] != "AA" else "AB")
        for forged in (f"{other_claims}.{signature}", f"{payload}.{signature[:-1]}", payload, "", "."):
            page = await bare.get("/ui/", headers={"Cookie": f"fd_session={forged}"})
            assert page.status_code == 303, forged


async def test_pages_carry_a_strict_csp_and_no_inline_script_or_style(
    lab: tuple[AppContext, httpx.AsyncClient, dict[str, str]],
) -> None:
    _, http, runs = lab
    await sign_in(http, "alice")
    for url in ("/ui/sign-in", "/ui/", f"/ui/runs/{runs['alice']}", f"/ui/runs/{runs['alice']}/cancel", "/ui/x"):
        page = await http.get(url, follow_redirects=True)
        csp = page.headers["content-security-policy"]
        assert "default-src 'none'" in csp, url
        assert "script-src 'self'" in csp, url
        assert "unsafe" not in csp, url
        assert page.headers["x-content-type-options"] == "nosniff"
        assert page.headers["x-frame-options"] == "DENY"
        assert re.search(r"<script(?![^>]*\bsrc=)", page.text) is None, url
        assert re.search(r"<style|\sstyle=|\son[a-z]+=", page.text) is None, url
        assert re.search(r"https?://", page.text) is None, url  # nothing is loaded from elsewhere


def test_the_vendored_htmx_is_the_pinned_release_with_its_licence() -> None:
    static = files("flowdeck.api.ui").joinpath("static")
    assert hashlib.sha256(static.joinpath(HTMX).read_bytes()).hexdigest() == HTMX_SHA256
    assert "Zero-Clause BSD" in static.joinpath(HTMX.replace(".min.js", ".LICENSE")).read_text()
    assert HTMX_SHA256 in static.joinpath("VENDORED.md").read_text()


VENDORED_DOCS = {
    "swagger-ui-bundle-5.35.0.js": "e6a898692f2d768e807c3ba4626068a69a2c5dd960dd6c76f3e4d3a3de180af2",
    "swagger-ui-5.35.0.css": "5ed08757e53da3e026d6cbecc61fe5d43585c9560b302d534ad56692519a273d",
    "redoc.standalone-3.0.1.js": "8c70c2de83d33e33a75b225e573d6d9fe851f066f824b44b1637d831d52d7543",
}


async def test_the_api_pages_load_only_files_flowdeck_serves(tmp_path: Path) -> None:
    async with basic_app(basic_settings(make_settings(tmp_path))) as (_, _services, http):
        for page in ("/docs", "/redoc", f"{WES}/docs", f"{WES}/redoc"):
            html = (await http.get(page)).text
            linked = re.findall(r'(?:src|href)="([^"]+)"', html) + re.findall(r"url: '([^']+)'", html)
            assert linked, page
            assert all(link.startswith("/") for link in linked), (page, linked)
            assert "http" not in html, page
            for link in linked:
                if link.startswith("/ui/static/"):
                    assert (await http.get(link)).status_code == 200, link
    for name, sha256 in VENDORED_DOCS.items():
        body = files("flowdeck.api.ui").joinpath("static", name).read_bytes()
        assert hashlib.sha256(body).hexdigest() == sha256, name
    licences = ("swagger-ui-5.35.0.LICENSE", "swagger-ui-5.35.0.NOTICE", "redoc-3.0.1.LICENSE")
    assert all(files("flowdeck.api.ui").joinpath("static", name).is_file() for name in licences)


async def test_auth_mode_none_needs_no_sign_in(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    upgrade(settings)
    async with basic_app(settings) as (_, _services, http):
        run = (await http.post(f"{WES}/runs", data=DEMO_RUN)).json()["run_id"]
        assert (await http.get("/ui/sign-in")).headers["location"] == "/ui/"
        page = await http.get("/ui/")
        assert page.status_code == 200
        assert run in page.text
        assert "Sign out" not in page.text


@pytest.mark.engine
async def test_a_real_runs_page_links_its_outputs_and_task_logs(api: httpx.AsyncClient, services: AppContext) -> None:
    """A CWL run through cwltool (auth mode none): the page lists each output with its size and
    checksum, and its download, run log and task log links answer with the stored files (the
    run's folder removed, as on a worker elsewhere)."""
    from flowdeck.backends.registry import Registry, load_class
    from flowdeck.services.runs.attachments import run_folder
    from tests.integration.test_engine_runs import TERMINAL, follow
    from tests.integration.test_engine_runs import submit as submit_cwl

    if not load_class("cwltool").available():
        pytest.skip("cwltool is not installed")
    services.settings.backends = ["demo", "cwltool"]
    services.backends = Registry(services.settings)
    run_id = await submit_cwl(api)
    assert await follow(api, Worker(services), run_id, TERMINAL) == "COMPLETE"
    run_folder(services.runs_dir, run_id).remove()
    page = (await api.get(f"/ui/runs/{run_id}")).text
    shouted = re.search(
        rf'<a href="(/ui/runs/{run_id}/outputs/\d+)" download>([^<]*shouted[^<]*)</a></td><td>(.*?)</td>', page
    )
    assert shouted, page
    assert shouted.group(3) == "15 bytes"
    assert "sha256:" in page
    download = await api.get(shouted.group(1))
    assert download.status_code == 307  # to the store's signed URL, as the API's own link
    assert (await api.get(download.headers["location"])).text == "HELLO FLOWDECK\n"
    task_logs = re.findall(rf'href="(/ui/runs/{run_id}/tasks/[^/"]+/logs/std(?:out|err))"', page)
    assert task_logs, page
    for url in [*task_logs, f"/ui/runs/{run_id}/logs/stderr"]:
        answer = await api.get(url, follow_redirects=True)
        assert answer.status_code == 200, url
    assert (await api.get(f"/ui/runs/{run_id}/outputs/99")).status_code == 404


async def test_oidc_sign_in_is_off_unless_configured(lab: tuple[AppContext, httpx.AsyncClient, dict[str, str]]) -> None:
    _, http, _ = lab
    assert "/ui/sign-in/oidc" not in (await http.get("/ui/sign-in")).text
    assert (await http.get("/ui/sign-in/oidc")).status_code == 404
    assert (await http.get("/ui/oidc/callback", params={"code": "c", "state": "s"})).status_code == 404


async def test_text_in_descriptions_narrows_the_list(lab: tuple[AppContext, httpx.AsyncClient, dict[str, str]]) -> None:
    _, http, runs = lab
    other = await submit(http, "alice", "lab-a", "a 100% PILOT_run")
    await sign_in(http, "alice")
    found = (await http.get("/ui/", params={"text": "Secret"})).text
    assert runs["alice"] in found
    assert other not in found
    literal = (await http.get("/ui/", params={"text": "100% pilot_"})).text  # % and _ are not wildcards
    assert other in literal
    assert runs["alice"] not in literal
    percent = (await http.get("/ui/", params={"text": "%"})).text
    assert other in percent
    assert runs["alice"] not in percent
    assert runs["bob"] not in (await http.get("/ui/", params={"text": "pilot"})).text  # bob's group stays hidden
    assert (await http.get("/ui/", params={"text": "x" * 201})).status_code == 400


async def test_filters_and_keyset_pages(lab: tuple[AppContext, httpx.AsyncClient, dict[str, str]]) -> None:
    _, http, runs = lab
    made = {runs["alice"]} | {await submit(http, "alice", "lab-a", f"batch {n}") for n in range(55)}
    await sign_in(http, "alice")
    seen: list[str] = []
    url = "/ui/?group=lab-a"
    while url:
        page = (await http.get(url)).text
        seen += re.findall(r'<a href="/ui/runs/([^"]+)">', page)
        older = re.search(r'<a rel="next" href="([^"]+)"', page)
        url = older.group(1).replace("&amp;", "&") if older else ""
    assert len(seen) == len(made)
    assert set(seen) == made  # every run once, newest first across two pages
    assert "group=lab-a" in (await http.get("/ui/?group=lab-a")).text  # the filter is kept in the link
    newest = seen[0]
    assert len(re.findall(r'<a href="/ui/runs/', (await http.get("/ui/?tag=project:p1")).text)) == 50
    assert newest not in (await http.get("/ui/?tag=project:other")).text
    assert newest not in (await http.get("/ui/?state=completed")).text
    assert newest in (await http.get("/ui/?state=queued")).text
    assert runs["bob"] not in (await http.get("/ui/?group=lab-b")).text
    bad = await http.get("/ui/?state=sleeping")
    assert bad.status_code == 400
    assert "state must be one of" in bad.text
    assert (await http.get("/ui/?tag=no-colon")).status_code == 400
