"""``flowdeck``: run the service, the worker, a sync pass, or talk to a server."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, NoReturn

from flowdeck.errors import ConfigurationError, FlowdeckError

if TYPE_CHECKING:
    from pydantic import ValidationError

    from flowdeck.settings import Settings

log = logging.getLogger("flowdeck")
# The server-side command groups (module under flowdeck.cli → its top-level commands), in help
# order. They import the database layer (sqlalchemy, ~1 s of CPU), so build_parser imports one only
# for its own command or for the whole tree: a client command never pays for them (docs/cli.md).
SERVER_GROUPS = {
    "admin": ("users", "groups", "tokens"),
    "images": ("images",),
    "references": ("references",),
    "purge": ("purge",),
}
WHOLE_TREE = "completion"  # walks every command


def _settings(args: argparse.Namespace) -> Settings:
    from flowdeck.settings import Settings

    overrides = {}
    if getattr(args, "host", None):
        overrides["host"] = args.host
    if getattr(args, "port", None):
        overrides["port"] = args.port
    return Settings(**overrides)


def _logging(settings: Settings) -> None:
    from flowdeck.services.auth.redact import install_redaction

    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    install_redaction()
    # Alembic 1.16+ logs one INFO line per built-in plugin on every upgrade: noise at start-up.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)


def cmd_up(args: argparse.Namespace) -> int:
    """API and worker in one process on the embedded default."""
    from flowdeck.api.app import create_app
    from flowdeck.api.server import bind, serve
    from flowdeck.services.auth.bootstrap import check_bind_allowed
    from flowdeck.services.core.context import AppContext
    from flowdeck.services.core.database import upgrade_in_child
    from flowdeck.worker.loop import Worker

    settings = _settings(args)
    _logging(settings)
    check_bind_allowed(settings)
    sock = bind(settings)
    upgrade_in_child(settings)

    async def main() -> None:
        services = AppContext.create(settings)
        stop = asyncio.Event()
        worker = Worker(services)
        app = create_app(settings, services)
        log.info(
            "flowdeck up: http://%s:%d (database %s)",
            settings.host,
            settings.port,
            services.db.engine.url.render_as_string(),
        )
        try:
            await asyncio.gather(serve(app, settings, stop, sock), worker.run(stop))
        finally:
            await services.close()

    asyncio.run(main())
    return 0


def cmd_api(args: argparse.Namespace) -> int:
    """The HTTP service alone."""
    from flowdeck.api.app import create_app
    from flowdeck.api.server import bind, serve
    from flowdeck.forked import check_in_child
    from flowdeck.services.auth.bootstrap import check_bind_allowed
    from flowdeck.services.core.database import upgrade_in_child
    from flowdeck.services.pipelines.catalog import CatalogFiles

    settings = _settings(args)
    _logging(settings)
    check_bind_allowed(settings)
    sock = bind(settings)
    if not args.no_migrate:
        upgrade_in_child(settings)
    catalog_files = CatalogFiles.read(settings.pipelines_dir)
    # PyYAML, jsonschema and the parsed catalog (~4 MB) leave with the child; a broken file still
    # stops start-up, and the server parses the same texts when a request first needs a pipeline.
    check_in_child(catalog_files.load, "checking the pipeline catalog")
    asyncio.run(serve(create_app(settings, catalog_files=catalog_files), settings, sock=sock))
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    """The daemon alone (run several against one PostgreSQL)."""
    import signal

    from flowdeck.services.core.context import AppContext
    from flowdeck.worker.loop import Worker

    settings = _settings(args)
    _logging(settings)

    async def main() -> None:
        services = AppContext.create(settings)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            await Worker(services).run(stop)
        finally:
            await services.close()

    asyncio.run(main())
    return 0


def cmd_sync(args: argparse.Namespace) -> int:
    """One sync pass over every active run, then exit (for cron)."""
    from flowdeck.services.core.context import AppContext
    from flowdeck.worker.loop import Worker

    settings = _settings(args)
    _logging(settings)

    async def main() -> int:
        services = AppContext.create(settings)
        worker = Worker(services)
        await worker.start()
        try:
            count = await worker.sync_pass()
            if not args.sync_only:
                count += await worker.iterate()
        finally:
            await worker.stop()
            await services.close()
        return count

    checked = asyncio.run(main())
    print(f"checked {checked} runs")
    return 0


def cmd_db(args: argparse.Namespace) -> int:
    from flowdeck.services.core.database import downgrade, upgrade

    settings = _settings(args)
    _logging(settings)
    if args.db_command == "upgrade":
        upgrade(settings, args.revision)
    else:
        downgrade(settings, args.revision)
    return 0


class Parser(argparse.ArgumentParser):
    """argparse, but a bad argument is one line (``flowdeck jobs get: error: …``) and exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The command tree; given the ``command`` about to run, without the server-side groups it
    does not need (see :data:`SERVER_GROUPS`)."""
    parser = Parser(prog="flowdeck", description="Workflow runs for bioinformatics groups.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, fn, text in (("up", cmd_up, "API and worker in one process"), ("api", cmd_api, "the HTTP service")):
        p = sub.add_parser(name, help=text)
        p.add_argument("--host")
        p.add_argument("--port", type=int)
        p.set_defaults(func=fn)
        if name == "api":
            p.add_argument("--no-migrate", action="store_true", help="do not apply migrations at start")
    sub.add_parser("worker", help="the daemon").set_defaults(func=cmd_worker)
    sync = sub.add_parser("sync", help="sync every active run once (for cron)")
    sync.add_argument("--once", action="store_true", required=True, help="one pass, then exit")
    sync.add_argument("--sync-only", action="store_true", help="do not also dispatch queued runs and cancels")
    sync.set_defaults(func=cmd_sync)
    db = sub.add_parser("db", help="database schema")
    db.add_argument("db_command", choices=["upgrade", "downgrade"])
    db.add_argument("revision", nargs="?", default="head")
    db.set_defaults(func=cmd_db)
    from flowdeck.cli import client

    client.register(sub)
    server = {name for commands in SERVER_GROUPS.values() for name in commands}
    whole = command is None or command == WHOLE_TREE or command not in server | set(sub.choices)
    for module, commands in SERVER_GROUPS.items():
        if whole or command in commands:
            importlib.import_module(f"flowdeck.cli.{module}").register(sub)
    parser.set_defaults(root_parser=parser)  # `flowdeck completion` walks the whole tree
    return parser


def _command(argv: Sequence[str]) -> str | None:
    """The top-level command ``argv`` names; None for an option first (``--help``: the whole tree)."""
    return argv[0] if argv and not argv[0].startswith("-") else None


def _bad_setting(exc: ValidationError) -> str:
    """One line naming the environment variable of the first bad setting."""
    error = exc.errors()[0]
    name = "FLOWDECK_" + "__".join(str(part) for part in error["loc"]).upper()
    return f"bad setting {name}: {error['msg']}" + (
        f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    )


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(_command(argv))
    args = parser.parse_args(argv)
    if args.func.__module__.startswith("flowdeck.cli.client"):  # client, client_jobs, client_events …
        from flowdeck.cli import client

        return client.run(args)
    from pydantic import ValidationError

    from flowdeck.settings import Settings

    try:
        return int(args.func(args))
    except (ConfigurationError, FlowdeckError) as exc:
        print(f"flowdeck: {exc.detail}", file=sys.stderr)
        return 2
    except ValidationError as exc:
        if exc.title != Settings.__name__:
            raise
        print(f"flowdeck: {_bad_setting(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
