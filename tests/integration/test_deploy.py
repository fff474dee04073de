"""The deployment files in deploy/, checked with the tools that read them where this machine has
them: systemd-analyze verify on the units, Debian's nginx -t on the site (with a self-signed
certificate made here), the compose file against the Compose Specification's JSON Schema (as
check-jsonschema ships it). No Docker engine runs here: the Dockerfile is checked for its shape
only (stages, user, extras, what it copies), never built."""

from __future__ import annotations

import datetime
import importlib.util
import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from flowdeck.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
UNITS = ("flowdeck-api.service", "flowdeck-worker.service", "flowdeck-sync.service", "flowdeck-sync.timer")
NGINX_PACKAGE = "nginx"  # Debian's package; the Makefile installs it


def _tool(name: str, *places: str) -> str | None:
    return shutil.which(name) or next((p for p in places if Path(p).is_file()), None)


def test_systemd_units_verify(tmp_path: Path) -> None:
    analyze = _tool("systemd-analyze", "/usr/bin/systemd-analyze", "/bin/systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not on this machine (Debian: systemd)")
    flowdeck = shutil.which("flowdeck") or str(Path(sys.executable).parent / "flowdeck")
    env_file = tmp_path / "flowdeck.env"
    env_file.write_text("FLOWDECK_LOG_LEVEL=INFO\n")
    for unit in UNITS:  # the installed paths become this machine's: verify checks the command exists
        text = (DEPLOY / "systemd" / unit).read_text()
        text = text.replace("/opt/flowdeck/bin/flowdeck", flowdeck).replace("/etc/flowdeck/flowdeck.env", str(env_file))
        (tmp_path / unit).write_text(text)
    done = subprocess.run(
        [analyze, "verify", "--man=no", *(f"./{unit}" for unit in UNITS)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    # unknown keys and bad values are only warnings: none may be printed
    assert [line for line in (done.stdout + done.stderr).splitlines() if "flowdeck" in line] == []


@pytest.mark.parametrize("unit", [u for u in UNITS if u.endswith(".service")])
def test_services_are_hardened(unit: str) -> None:
    text = (DEPLOY / "systemd" / unit).read_text()
    assert re.search(r"^User=flowdeck$", text, re.M) or "DynamicUser=yes" in text
    for line in (
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "CapabilityBoundingSet=",
    ):
        assert re.search(f"^{re.escape(line)}$", text, re.M), line
    assert "StateDirectory=flowdeck" in text


def _self_signed(folder: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "flowdeck.example.org")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


def test_nginx_accepts_the_site(tmp_path: Path) -> None:
    nginx = _tool("nginx", "/usr/sbin/nginx")
    assert nginx is not None, f"nginx is not installed: install Debian's {NGINX_PACKAGE!r} package (the Makefile does)"
    cert, key = _self_signed(tmp_path)
    site = (DEPLOY / "nginx" / "flowdeck.conf").read_text()
    site = re.sub(r"ssl_certificate /\S+;", f"ssl_certificate {cert};", site)
    site = re.sub(r"ssl_certificate_key /\S+;", f"ssl_certificate_key {key};", site)
    (tmp_path / "site.conf").write_text(site)
    temp = " ".join(
        f"{kind}_temp_path {tmp_path / kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    (tmp_path / "nginx.conf").write_text(
        f"pid {tmp_path / 'nginx.pid'};\nerror_log stderr;\nevents {{}}\n"
        f"http {{ {temp} access_log off; include {tmp_path / 'site.conf'}; }}\n"
    )
    done = subprocess.run(
        [nginx, "-t", "-c", str(tmp_path / "nginx.conf"), "-p", str(tmp_path), "-e", "stderr"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "test is successful" in done.stderr
    assert "[warn]" not in done.stderr, done.stderr


def test_nginx_body_limit_matches_the_upload_limit() -> None:
    site = (DEPLOY / "nginx" / "flowdeck.conf").read_text()
    found = re.search(r"client_max_body_size (\d+)([kmg]?);", site)
    assert found is not None
    size = int(found.group(1)) * {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[found.group(2)]
    assert size == Settings.model_fields["max_upload_bytes"].default
    events = site[site.index("location ~ /events$") :]
    assert "proxy_buffering off;" in events.split("}")[0]
    assert "X-Forwarded-Proto $scheme" in site
    assert "ssl_protocols TLSv1.2 TLSv1.3;" in site


def _compose_schema() -> dict[str, object]:
    spec = importlib.util.find_spec("check_jsonschema")
    assert spec is not None, "check-jsonschema (a dev dependency) ships the Compose Specification schema"
    assert spec.origin is not None
    path = Path(spec.origin).parent / "builtin_schemas" / "vendor" / "compose-spec.json"
    schema: dict[str, object] = json.loads(path.read_text())
    return schema


def test_compose_file_follows_the_compose_specification() -> None:
    import jsonschema

    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    schema = _compose_schema()
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(compose), key=str)
    assert errors == [], [f"{list(e.absolute_path)}: {e.message}" for e in errors]
    assert {"api", "worker", "postgres", "minio"} <= set(compose["services"])
    assert compose["services"]["worker"]["command"] == ["worker"]
    assert compose["services"]["minio"]["profiles"] == ["s3"]
    build = compose["services"]["api"]["build"]
    assert (DEPLOY / build["context"] / build["dockerfile"]).resolve() == DEPLOY / "Dockerfile"


def test_compose_schema_catches_a_broken_file() -> None:
    """The check above can fail: a service with an unknown key breaks the schema."""
    import jsonschema

    broken = {"services": {"api": {"image": "flowdeck", "restart_policy": "always"}}}
    assert list(jsonschema.Draft202012Validator(_compose_schema()).iter_errors(broken))


def test_dockerfile_shape() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    stages = re.findall(r"^FROM \S+(?: AS (\w+))?$", text, re.M)
    assert len(stages) >= 2, "multi-stage: build, then run"
    final = text[text.rindex("\nFROM ") :]
    user = re.search(r"^USER (\S+)$", final, re.M)
    assert user is not None
    assert user.group(1).split(":")[0] not in ("root", "0")
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    default = re.search(r'^ARG EXTRAS="([^"]+)"$', text, re.M)
    assert default is not None
    assert set(default.group(1).split(",")) <= set(extras)
    for source in re.findall(r"^COPY (?!--from)(.+) \S+$", text, re.M):
        for item in source.split():
            assert (ROOT / item).exists(), item
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text()
    assert all(f"!{item}" in ignore for item in ("pyproject.toml", "README.md", "src/"))
