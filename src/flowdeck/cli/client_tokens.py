"""The saved sign-in of ``flowdeck login --oidc``: the tokens kept in the config file, and their
renewal with the refresh token when the access token has (nearly) expired (docs/cli.md, ADR 0031).
Apart from the device flow itself (cli/client_oidc.py), so the request helpers can renew a token
without importing the login."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from flowdeck.cli.client_errors import ClientError, UsageError

if TYPE_CHECKING:
    import httpx

REFRESH_MARGIN_SECONDS = 10  # refresh a little early: the request still has to reach the server
_SAVED = ("token_expires_at", "refresh_token", "oidc_token_endpoint", "oidc_client_id")


def oauth_error(answer: httpx.Response) -> str | None:
    """The OAuth ``error`` of a refused answer ("" when it names none), None for a success."""
    if answer.status_code < 400:
        return None
    try:
        return str(answer.json().get("error") or "")
    except ValueError:
        return ""


def saved_tokens(body: Mapping[str, Any], token_url: str, client_id: str) -> dict[str, str]:
    """A token endpoint's answer as config entries: the access token, its expiry, how to refresh it."""
    saved = {"token": str(body["access_token"])}
    if expires_in := body.get("expires_in"):
        saved["token_expires_at"] = str(int(time.time() + float(expires_in)))
    if refresh := body.get("refresh_token"):
        saved |= {"refresh_token": str(refresh), "oidc_token_endpoint": token_url, "oidc_client_id": client_id}
    return saved


def expired(saved: Mapping[str, Any]) -> bool:
    """Whether the saved access token has (nearly) expired; tokens without an expiry never do."""
    expires_at = saved.get("token_expires_at")
    return expires_at is not None and time.time() >= float(expires_at) - REFRESH_MARGIN_SECONDS


def fresh_token(saved: dict[str, Any]) -> dict[str, str]:
    """The config with a new access token from the refresh token (the caller saves it)."""
    if not saved.get("refresh_token"):
        raise UsageError("the saved sign-in has expired; run flowdeck login --oidc again")
    import httpx

    form = {
        "grant_type": "refresh_token",
        "refresh_token": saved["refresh_token"],
        "client_id": saved["oidc_client_id"],
    }
    try:
        with httpx.Client(timeout=30) as client:
            answer = client.post(saved["oidc_token_endpoint"], data=form)
    except httpx.TransportError as exc:
        raise ClientError(f"the saved sign-in has expired, and the issuer is out of reach to renew it: {exc}") from None
    if oauth_error(answer) is not None:
        raise UsageError("the saved sign-in has expired and could not be renewed; run flowdeck login --oidc again")
    refreshed = saved_tokens(answer.json(), saved["oidc_token_endpoint"], saved["oidc_client_id"])
    # An issuer that does not rotate refresh tokens answers without one: the old one stays valid.
    refreshed.setdefault("refresh_token", saved["refresh_token"])
    refreshed.setdefault("oidc_token_endpoint", saved["oidc_token_endpoint"])
    refreshed.setdefault("oidc_client_id", saved["oidc_client_id"])
    return forget(saved) | refreshed


def forget(saved: Mapping[str, Any]) -> dict[str, str]:
    """The config without any credential (``flowdeck logout``)."""
    return {key: str(value) for key, value in saved.items() if key not in ("token", *_SAVED)}
