"""``flowdeck login --oidc``: the OAuth 2.0 device authorization grant (RFC 8628) at the server's issuer.

The issuer, client id and scopes come from the server's service-info (``oidc_*`` tags, set by
its operator) unless given on the command line. The CLI shows the verification URI and user
code, polls the token endpoint at the interval the issuer asks for (5 s more after each
``slow_down``), and returns the tokens; :func:`fresh_token` later trades the refresh token for a
new access token once the saved one has expired. Everything here is an HTTP client: the issuer
checks the user, flowdeck checks the token.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flowdeck.cli.client_http import WES, ClientError, UsageError, checked
from flowdeck.cli.client_tokens import oauth_error, saved_tokens

if TYPE_CHECKING:
    import httpx

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
DEFAULT_INTERVAL = 5  # RFC 8628 §3.2, when the issuer names none
SLOW_DOWN_SECONDS = 5  # RFC 8628 §3.5


@dataclass(frozen=True)
class Issuer:
    """Where and as whom the CLI signs in."""

    url: str
    client_id: str
    scopes: str


def issuer_for(client: httpx.Client, server: str, args: argparse.Namespace) -> Issuer:
    """The issuer, client id and scopes: the command line's, else what the server advertises."""
    tags: Mapping[str, str] = {}
    if not (args.issuer and args.client_id):
        tags = checked(client.get(f"{server}{WES}/service-info")).get("tags") or {}
    url, client_id = args.issuer or tags.get("oidc_issuer"), args.client_id or tags.get("oidc_cli_client_id")
    if not url or not client_id:
        raise UsageError(
            f"{server} does not advertise an OIDC issuer and client for the CLI "
            "(oidc_cli_client_id); give --issuer and --client-id, or use --token"
        )
    return Issuer(url.rstrip("/"), client_id, args.scopes or tags.get("oidc_cli_scopes") or "openid offline_access")


def endpoints(client: httpx.Client, issuer: Issuer) -> tuple[str, str]:
    """The issuer's device authorization and token endpoints (a UsageError when it has no device flow)."""
    import httpx

    try:
        found = checked(client.get(f"{issuer.url}/.well-known/openid-configuration"))
    except httpx.TransportError as exc:
        raise ClientError(f"cannot reach the issuer {issuer.url}: {exc}") from None
    device, token = found.get("device_authorization_endpoint"), found.get("token_endpoint")
    if not device or not token:
        raise UsageError(f"the issuer {issuer.url} does not offer the device flow; use --token with an API token")
    return str(device), str(token)


def device_login(client: httpx.Client, issuer: Issuer) -> dict[str, str]:
    """Run the device flow to its end: the tokens, as the config file keeps them."""
    device_url, token_url = endpoints(client, issuer)
    started = time.monotonic()
    begun = _post(client, device_url, {"client_id": issuer.client_id, "scope": issuer.scopes})
    if (error := oauth_error(begun)) is not None:
        raise ClientError(
            f"the issuer refused to start the device flow for {issuer.client_id}: {error or begun.status_code}"
        )
    grant = begun.json()
    _show(grant)
    form = {"grant_type": DEVICE_GRANT, "device_code": grant["device_code"], "client_id": issuer.client_id}
    interval = float(grant.get("interval") or DEFAULT_INTERVAL)
    deadline = started + float(grant.get("expires_in") or 600)
    while True:
        time.sleep(interval)
        answer = _post(client, token_url, form)
        error = oauth_error(answer)
        if error is None:
            return saved_tokens(checked(answer), token_url, issuer.client_id)
        if error == "slow_down":
            interval += SLOW_DOWN_SECONDS
            print(f"the issuer asked to poll more slowly: every {interval:.0f} s", file=sys.stderr, flush=True)
        elif error != "authorization_pending":
            raise ClientError(_refusal(error, answer))
        if time.monotonic() > deadline:
            raise ClientError("the code expired before the sign-in was confirmed; run flowdeck login --oidc again")


def _post(client: httpx.Client, url: str, form: Mapping[str, str]) -> httpx.Response:
    import httpx

    try:
        return client.post(url, data=form)
    except httpx.TransportError as exc:
        raise ClientError(f"cannot reach the issuer at {url}: {exc}") from None


def _show(grant: Mapping[str, Any]) -> None:
    lines = [f"To sign in, open {grant['verification_uri']} and enter the code {grant['user_code']}"]
    if complete := grant.get("verification_uri_complete"):
        lines.append(f"or open {complete}")
    lines.append("waiting for the sign-in to be confirmed …")
    print("\n".join(lines), file=sys.stderr, flush=True)


def _refusal(error: str, answer: httpx.Response) -> str:
    if error == "access_denied":
        return "the sign-in was refused at the issuer"
    if error == "expired_token":
        return "the code expired before the sign-in was confirmed; run flowdeck login --oidc again"
    return f"{answer.status_code} from the issuer's token endpoint: {error or answer.text[:200]}"
