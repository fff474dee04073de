"""The "how to authenticate" page for the configured mode (served at ``/auth/instructions``).

The page is built as a few blocks (headings, paragraphs, shell examples) and
rendered either as Markdown or as a small standalone HTML page.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

from flowdeck.settings import Settings

PATH = "/auth/instructions"


@dataclass(frozen=True)
class Block:
    kind: str  # "h1", "h2", "p" or "code"
    text: str


def _api_token_blocks(base: str) -> list[Block]:
    return [
        Block("h2", "API tokens (scripts and CLIs)"),
        Block(
            "p",
            "An API token is shown once, when it is created; flowdeck keeps only its hash. "
            "Send it as a bearer token. Tokens can carry an expiry and can be revoked at any time.",
        ),
        Block(
            "code",
            "flowdeck tokens create --name my-script          # server CLI, prints the token once\n"
            f"curl -H 'Authorization: Bearer fd_xxxxxxxx_…' {base}/ga4gh/wes/v1/runs",
        ),
    ]


def _blocks(settings: Settings, base: str) -> list[Block]:
    title = [Block("h1", f"Authenticating to {settings.service_name}")]
    if settings.auth_mode == "none":
        return [
            *title,
            Block(
                "p",
                "This service runs without authentication (auth mode 'none'): every caller acts as "
                "the local user and sees every research group. It is meant for one person on their "
                "own machine and listens on a loopback address unless its operator forced otherwise.",
            ),
            Block("code", f"curl {base}/ga4gh/wes/v1/runs"),
        ]
    if settings.auth_mode == "basic":
        return [
            *title,
            Block(
                "p",
                "This service uses HTTP Basic authentication with a flowdeck username and password, "
                "given to you by an administrator. Usernames are ASCII letters, digits and . _ - @ +, "
                "compared without regard to case. Always use HTTPS.",
            ),
            Block("code", f"curl -u alice:'your password' {base}/ga4gh/wes/v1/runs"),
            *_api_token_blocks(base),
        ]
    return [
        *title,
        Block(
            "p",
            f"This service accepts OAuth2/OpenID Connect access tokens from {settings.oidc_issuer} "
            f"(audience '{settings.oidc_audience}'), sent as bearer tokens. Your research groups come "
            f"from the token's '{settings.oidc_groups_claim}' claim. Get a token from your identity "
            "provider (for example with the device or client-credentials flow) and send it:",
        ),
        Block("code", f'curl -H "Authorization: Bearer $ACCESS_TOKEN" {base}/ga4gh/wes/v1/runs'),
        *_api_token_blocks(base),
    ]


def render_markdown(settings: Settings, base_url: str | None = None) -> str:
    """The page as Markdown; ``base_url`` is where clients reach the service."""
    out = []
    for block in _blocks(settings, _base(settings, base_url)):
        if block.kind == "code":
            out.append(f"```sh\n{block.text}\n```")
        else:
            out.append({"h1": "# ", "h2": "## ", "p": ""}[block.kind] + block.text)
    return "\n\n".join(out) + "\n"


def render_html(settings: Settings, base_url: str | None = None) -> str:
    """The page as a standalone HTML document (all text escaped)."""
    body = []
    for block in _blocks(settings, _base(settings, base_url)):
        text = html.escape(block.text)
        body.append(
            f"<pre><code>{text}</code></pre>" if block.kind == "code" else f"<{block.kind}>{text}</{block.kind}>"
        )
    title = html.escape(f"Authenticating to {settings.service_name}")
    return (
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{title}</title></head>\n'
        f"<body>\n{chr(10).join(body)}\n</body></html>\n"
    )


def _base(settings: Settings, base_url: str | None) -> str:
    return (base_url or settings.public_url or f"http://{settings.host}:{settings.port}").rstrip("/")
