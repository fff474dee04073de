"""Helpers for the authentication tests: cheap password hashing, a migrated
SQLite database, and a real OIDC issuer (discovery + JWKS) on 127.0.0.1."""

from __future__ import annotations

import atexit
import base64
import json
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
from argon2 import PasswordHasher
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from flowdeck.db.engine import Database
from flowdeck.db.migrate import upgrade
from flowdeck.services.auth.passwords import Passwords
from flowdeck.settings import Settings

AUDIENCE = "flowdeck-api"


def cheap_passwords() -> Passwords:
    """argon2id with tiny parameters: the same code path, a thousandth of the cost."""
    return Passwords(PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))


def sqlite_settings(tmp_path: Path, **overrides: Any) -> Settings:
    return Settings(data_dir=tmp_path / "data", **overrides)


_template: list[Path] = []


def migrated_db(settings: Settings) -> Database:
    """A database for ``settings`` (SQLite), copied from one migrated once per session."""
    if not _template:
        folder = Path(tempfile.mkdtemp(prefix="flowdeck-auth-template-"))
        upgrade(Settings(data_dir=folder))
        atexit.register(shutil.rmtree, folder, True)
        _template.append(folder / "flowdeck.db")
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_template[0], settings.data_dir / "flowdeck.db")
    return Database(settings)


class SigningKey:
    """A private key with its kid, able to mint tokens and publish its JWK."""

    def __init__(self, kid: str, alg: str = "RS256") -> None:
        self.kid, self.alg = kid, alg
        if alg.startswith("ES"):
            self.private: Any = ec.generate_private_key(ec.SECP256R1())
        else:
            self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def jwk(self) -> dict[str, Any]:
        algorithm = jwt.get_algorithm_by_name(self.alg)
        data: dict[str, Any] = json.loads(algorithm.to_jwk(self.private.public_key()))
        return {**data, "kid": self.kid, "use": "sig"}

    def sign(self, claims: dict[str, Any], **header: Any) -> str:
        return jwt.encode(claims, self.private, algorithm=self.alg, headers={"kid": self.kid, **header})


class Issuer:
    """A real HTTP server publishing an OIDC discovery document and a JWKS."""

    def __init__(self) -> None:
        self.keys: list[SigningKey] = []
        self.extra_jwks: list[dict[str, Any]] = []
        self.hits: dict[str, int] = {}
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                issuer.hits[self.path] = issuer.hits.get(self.path, 0) + 1
                if self.path == "/.well-known/openid-configuration":
                    body: Any = {"issuer": issuer.url, "jwks_uri": f"{issuer.url}/jwks"}
                elif self.path == "/jwks":
                    body = {"keys": [key.jwk() for key in issuer.keys] + issuer.extra_jwks}
                else:
                    self.send_error(404)
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True)

    @property
    def jwks_fetches(self) -> int:
        return self.hits.get("/jwks", 0)

    def claims(self, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        values: dict[str, Any] = {
            "iss": self.url,
            "aud": AUDIENCE,
            "sub": "user-123",
            "iat": now,
            "exp": now + 300,
            "preferred_username": "alice",
            "groups": ["lab-a"],
        }
        values.update(overrides)
        return {name: value for name, value in values.items() if value is not None}

    def settings(self, tmp_path: Path, **overrides: Any) -> Settings:
        return sqlite_settings(
            tmp_path,
            auth_mode="oidc",
            oidc_issuer=self.url,
            oidc_audience=AUDIENCE,
            oidc_admin_group="flowdeck-admins",
            **overrides,
        )


@contextmanager
def running_issuer() -> Iterator[Issuer]:
    issuer = Issuer()
    issuer.thread.start()
    try:
        yield issuer
    finally:
        issuer.server.shutdown()
        issuer.server.server_close()


def basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
