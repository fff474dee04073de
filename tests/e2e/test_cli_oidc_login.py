"""``flowdeck login --oidc`` end to end: the device flow (RFC 8628) at a real OIDC provider (npm's
oidc-provider, tests/support/oidc_provider) whose verification pages the test drives with httpx as
the user would, against a real ``flowdeck up`` in auth mode oidc."""

from __future__ import annotations

import re
import shutil
import signal
import stat
import subprocess
import time
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.e2e.cli_support import CLI, client_env, running_server, server_env
from tests.support.network import free_port

PROVIDER = Path(__file__).resolve().parents[1] / "support" / "oidc_provider"
AUDIENCE = "urn:flowdeck:api"  # the resource server.mjs issues the CLI clients' access tokens for
SCOPES = "openid profile groups offline_access api"
_XSRF = re.compile(r'name="xsrf" value="([^"]+)"')


@contextmanager
def oidc_provider(folder: Path, *, device_flow: bool = True) -> Iterator[str]:
    """server.mjs on a free loopback port (its issuer URL), stopped afterwards."""
    node = shutil.which("node")
    if node is None or not (PROVIDER / "node_modules" / "oidc-provider").is_dir():
        pytest.skip("node or npm's oidc-provider is missing (make install runs npm ci)")
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    argv = [node, "server.mjs", str(port), "http://127.0.0.1:1/unused", "cli-test-secret", '{"carol": ["lab-c"]}']
    env = {"PATH": "/usr/bin:/bin", "OIDC_DEVICE_FLOW": "on" if device_flow else "off"}
    log = folder / f"idp-{port}.log"
    with log.open("w") as out:
        proc = subprocess.Popen(argv, cwd=PROVIDER, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            try:
                httpx.get(f"{issuer}/.well-known/openid-configuration", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        yield issuer
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)


@dataclass(frozen=True)
class Site:
    issuer: str
    server: str


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    folder = tmp_path_factory.mktemp("cli-oidc")
    with oidc_provider(folder) as issuer:
        env = server_env(
            folder,
            FLOWDECK_AUTH_MODE="oidc",
            FLOWDECK_OIDC_ISSUER=issuer,
            FLOWDECK_OIDC_AUDIENCE=AUDIENCE,
            FLOWDECK_OIDC_CLI_CLIENT_ID="flowdeck-cli",
            FLOWDECK_OIDC_CLI_SCOPES=SCOPES,
            FLOWDECK_BACKENDS="demo",
        )
        with running_server(env, folder) as url:
            yield Site(issuer, url)


class Login:
    """``flowdeck login --oidc …`` running in the background, read line by line from its stderr."""

    def __init__(self, env: dict[str, str], cwd: Path, *extra: str) -> None:
        argv = [*CLI, "login", "--oidc", *extra]
        self.proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []

    def read_until(self, prefix: str) -> str:
        assert self.proc.stderr is not None
        while line := self.proc.stderr.readline():
            self.lines.append(line.rstrip("\n"))
            if line.startswith(prefix):
                return line.rstrip("\n")
        raise AssertionError(f"no line starting {prefix!r}: {self.lines}")

    def finish(self) -> tuple[int, str, str]:
        out, err = self.proc.communicate(timeout=60)
        return self.proc.returncode, out, "\n".join([*self.lines, err])


def confirm_at_issuer(issuer: str, user_code: str, *, deny: bool = False) -> str:
    """What the user does in a browser: enter the code, confirm (or abort), sign in, consent."""
    with httpx.Client(base_url=issuer, follow_redirects=True, timeout=30) as browser:
        page = browser.get("/device", params={"user_code": user_code})  # verification_uri_complete
        page = browser.post("/device", data={"xsrf": _xsrf(page), "user_code": user_code})
        choice = {"abort": "yes"} if deny else {"confirm": "yes"}
        page = browser.post("/device", data={"xsrf": _xsrf(page), "user_code": user_code, **choice})
        if deny:
            return page.text
        page = browser.post(str(page.url), data={"prompt": "login", "login": "carol", "password": "any"})
        page = browser.post(str(page.url), data={"prompt": "consent"})
        return page.text


def _xsrf(page: httpx.Response) -> str:
    found = _XSRF.search(page.text)
    assert found, page.text
    return found[1]


def _user_code(login: Login, issuer: str) -> str:
    shown = login.read_until("To sign in, open ")
    assert shown.startswith(f"To sign in, open {issuer}/device and enter the code ")
    code = shown.rsplit(" ", 1)[1]
    assert login.read_until("or open ") == f"or open {issuer}/device?user_code={code}"
    return code


def _config(home: Path) -> Path:
    return home / "flowdeck" / "config.toml"


def test_device_login_saves_tokens_that_jobs_list_uses_and_renews(site: Site, tmp_path: Path) -> None:
    env = client_env(site.server, tmp_path / "home")
    refused = subprocess.run([*CLI, "jobs", "list"], env=env, capture_output=True, text=True, timeout=60)
    assert refused.stderr.startswith("flowdeck: 401"), refused.stderr
    login = Login(env, tmp_path)
    assert "Sign-in Success" in confirm_at_issuer(site.issuer, _user_code(login, site.issuer))
    code, out, err = login.finish()
    assert code == 0, err
    assert out.startswith(f"logged in to {site.server} as carol"), out
    path = _config(tmp_path / "home")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    saved = tomllib.loads(path.read_text())
    assert saved["token"].count(".") == 2  # the issuer's JWT access token
    assert saved["refresh_token"]
    assert saved["oidc_client_id"] == "flowdeck-cli"
    listed = subprocess.run([*CLI, "jobs", "list", "-o", "json"], env=env, capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0, listed.stderr
    assert tomllib.loads(path.read_text())["token"] == saved["token"]  # still valid: not renewed
    # The token's expiry passes (written back as the clock would reach it): the next command renews it.
    path.write_text(path.read_text().replace(saved["token_expires_at"], str(int(time.time()) - 1)))
    renewed = subprocess.run([*CLI, "jobs", "list"], env=env, capture_output=True, text=True, timeout=60)
    assert renewed.returncode == 0, renewed.stderr
    now = tomllib.loads(path.read_text())
    assert now["token"] != saved["token"]
    assert int(now["token_expires_at"]) > time.time() + 60
    out_again = subprocess.run([*CLI, "logout"], env=env, capture_output=True, text=True, timeout=60)
    assert out_again.returncode == 0, out_again.stderr
    assert tomllib.loads(path.read_text()) == {"server": site.server}


def test_a_refused_sign_in_is_one_line(site: Site, tmp_path: Path) -> None:
    login = Login(client_env(site.server, tmp_path / "home"), tmp_path)
    confirm_at_issuer(site.issuer, _user_code(login, site.issuer), deny=True)
    code, out, err = login.finish()
    assert (code, out) == (1, "")
    assert err.splitlines()[-1] == "flowdeck: the sign-in was refused at the issuer"
    assert not _config(tmp_path / "home").exists()


def test_an_expired_code_is_one_line(site: Site, tmp_path: Path) -> None:
    login = Login(client_env(site.server, tmp_path / "home"), tmp_path, "--client-id", "flowdeck-cli-expiring")
    _user_code(login, site.issuer)  # nobody confirms it; the issuer lets it expire after 2 s
    code, _, err = login.finish()
    assert code == 1
    assert err.splitlines()[-1].startswith("flowdeck: the code expired before the sign-in was confirmed")


def test_slow_down_stretches_the_interval_by_five_seconds(site: Site, tmp_path: Path) -> None:
    env = client_env(site.server, tmp_path / "home")
    login = Login(env, tmp_path, "--client-id", "flowdeck-cli-strict")
    user_code = _user_code(login, site.issuer)
    assert login.read_until("the issuer asked") == "the issuer asked to poll more slowly: every 6 s"
    confirm_at_issuer(site.issuer, user_code)
    code, out, err = login.finish()
    assert code == 0, err
    assert "as carol" in out


def test_an_issuer_without_the_device_flow_is_one_line(site: Site, tmp_path: Path) -> None:
    env = client_env(site.server, tmp_path / "home")
    with oidc_provider(tmp_path, device_flow=False) as plain:
        argv = [*CLI, "login", "--oidc", "--issuer", plain, "--client-id", "flowdeck-cli"]
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert (
        done.stderr == f"flowdeck: the issuer {plain} does not offer the device flow; use --token with an API token\n"
    )
