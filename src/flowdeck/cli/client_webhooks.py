"""``flowdeck webhooks …`` and ``flowdeck notifications …``: endpoints, their delivery log, and
e-mail preferences (docs/webhooks.md)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from flowdeck.cli.client_http import call, show_one
from flowdeck.cli.output import emit

_HOOK_COLUMNS = ["id", "url", "research_group", "event_types", "description"]
_DELIVERY_COLUMNS = ["id", "event_type", "state", "attempts", "last_status", "last_error", "created_at"]
_PREFERENCE_COLUMNS = ["email", "on_completion", "on_failure", "request_summary"]


def webhooks_add(args: argparse.Namespace) -> int:
    """Register an endpoint; its signing secret is printed this once."""
    filters = {k: v for k, v in (("pipeline", args.pipeline), ("run", args.run), ("request", args.request)) if v}
    body: dict[str, Any] = {"url": args.url, "filters": filters}
    for key, value in (("event_types", args.event), ("research_group", args.group), ("description", args.description)):
        if value:
            body[key] = value
    show_one(args, "POST", "/webhooks", _HOOK_COLUMNS, json=body)
    return 0


def webhooks_list(args: argparse.Namespace) -> int:
    body = call(args, "GET", "/webhooks")
    emit(args, body, body["webhooks"], _HOOK_COLUMNS)
    return 0


def webhooks_get(args: argparse.Namespace) -> int:
    show_one(args, "GET", f"/webhooks/{args.webhook_id}", _HOOK_COLUMNS)
    return 0


def webhooks_delete(args: argparse.Namespace) -> int:
    call(args, "DELETE", f"/webhooks/{args.webhook_id}")
    print(f"deleted {args.webhook_id}")
    return 0


def webhooks_deliveries(args: argparse.Namespace) -> int:
    """An endpoint's delivery log, newest first (``--before`` pages on)."""
    params = {"page_size": args.limit, **({} if args.before is None else {"before": args.before})}
    body = call(args, "GET", f"/webhooks/{args.webhook_id}/deliveries", params=params)
    emit(args, body, body["deliveries"], _DELIVERY_COLUMNS)
    if body.get("next_before") is not None and args.output == "table":
        print(f"more: --before {body['next_before']}", file=sys.stderr)
    return 0


def webhooks_redeliver(args: argparse.Namespace) -> int:
    path = f"/webhooks/{args.webhook_id}/deliveries/{args.delivery_id}/redeliver"
    show_one(args, "POST", path, _DELIVERY_COLUMNS)
    return 0


def notifications_show(args: argparse.Namespace) -> int:
    show_one(args, "GET", "/notifications/preferences", _PREFERENCE_COLUMNS)
    return 0


def notifications_set(args: argparse.Namespace) -> int:
    """Set the whole record: flags not given take the server's defaults, as ``PUT`` does."""
    body: dict[str, Any] = {"email": args.email}
    for key in ("on_completion", "on_failure", "request_summary"):
        if getattr(args, key) is not None:
            body[key] = getattr(args, key)
    show_one(args, "PUT", "/notifications/preferences", _PREFERENCE_COLUMNS, json=body)
    return 0


def notifications_off(args: argparse.Namespace) -> int:
    call(args, "DELETE", "/notifications/preferences")
    print("no more notification e-mails")
    return 0


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add ``flowdeck webhooks`` and ``flowdeck notifications``."""
    _register_webhooks(sub, common)
    _register_notifications(sub, common)


def _register_webhooks(sub: Any, common: argparse.ArgumentParser) -> None:
    hooks = sub.add_parser("webhooks", help="endpoints told of run and request events").add_subparsers(
        dest="webhooks_command", required=True
    )
    p = hooks.add_parser("add", parents=[common], help="register an endpoint (its secret is shown once)")
    p.add_argument("url")
    p.add_argument("--event", action="append", default=[], help="an event type (repeat; default: every type)")
    p.add_argument("--group", help="research group whose events it receives")
    p.add_argument("--pipeline", help="only runs of this pipeline")
    p.add_argument("--run", help="only this run")
    p.add_argument("--request", help="only runs of this request")
    p.add_argument("--description")
    p.set_defaults(func=webhooks_add)
    p = hooks.add_parser("list", parents=[common], help="endpoints of your groups")
    p.set_defaults(func=webhooks_list)
    for name, fn, what in (("get", webhooks_get, "one endpoint"), ("delete", webhooks_delete, "delete an endpoint")):
        p = hooks.add_parser(name, parents=[common], help=what)
        p.add_argument("webhook_id")
        p.set_defaults(func=fn)
    p = hooks.add_parser("deliveries", parents=[common], help="an endpoint's delivery log, newest first")
    p.add_argument("webhook_id")
    p.add_argument("--limit", type=int, default=50, help="deliveries per page")
    p.add_argument("--before", type=int, help="the next page (as printed after 'more:')")
    p.set_defaults(func=webhooks_deliveries)
    p = hooks.add_parser("redeliver", parents=[common], help="send one delivery again now")
    p.add_argument("webhook_id")
    p.add_argument("delivery_id", help="as `webhooks deliveries` lists it")
    p.set_defaults(func=webhooks_redeliver)


def _flag(parser: argparse.ArgumentParser, name: str, what: str) -> None:
    parser.add_argument(f"--{name.replace('_', '-')}", dest=name, action=argparse.BooleanOptionalAction, help=what)


def _register_notifications(sub: Any, common: argparse.ArgumentParser) -> None:
    notes = sub.add_parser("notifications", help="your e-mail notification preferences").add_subparsers(
        dest="notifications_command", required=True
    )
    p = notes.add_parser("show", parents=[common], help="your preferences")
    p.set_defaults(func=notifications_show)
    p = notes.add_parser("set", parents=[common], help="set your preferences (the whole record)")
    p.add_argument("--email", required=True)
    _flag(p, "on_completion", "mail when a run completes (default off)")
    _flag(p, "on_failure", "mail when a run fails (default on)")
    _flag(p, "request_summary", "one mail per request when all its runs ended (default off)")
    p.set_defaults(func=notifications_set)
    p = notes.add_parser("off", parents=[common], help="stop every notification e-mail to you")
    p.set_defaults(func=notifications_off)
