"""The ``herald`` command."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from api import logs
from infra.settings import ConfigError, Settings, database_url

DESCRIPTION = """\
Herald: a GraphQL accounts API with transactional email.

Configuration comes from environment variables (see the README's table);
`herald dev` needs none of them.
"""


def _at_least_one(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except ConfigError as exc:
        print(f"herald: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def cmd_migrate(args: argparse.Namespace) -> int:
    from infra import migrate

    raw = os.environ.get("DATABASE_URL", "")
    try:
        url = database_url(raw)
    except ValueError as exc:
        problem = "DATABASE_URL is required" if not raw else f"DATABASE_URL is not valid: {exc}"
        print(f"herald: invalid configuration:\n  - {problem}", file=sys.stderr)
        return 2
    revision = migrate.upgrade(url)
    print(f"database schema at revision {revision}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from api.app import create_app, server_config

    settings = _settings()
    # uvicorn drains connections on SIGTERM, then re-raises the signal with the
    # handler it found at start. Finding this one, it ends with status 0: a
    # graceful stop is not a failure to the process supervisor.
    signal.signal(signal.SIGTERM, lambda signum, frame: None)
    config = server_config(create_app(settings), settings, host=args.host, port=args.port)
    logs.configure(settings.log_level)
    uvicorn.Server(config).run()
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from infra import worker

    settings = _settings()  # a configuration error stops here, before any child
    logs.configure(settings.log_level)
    if args.processes > 1:
        return worker.supervise(work, processes=args.processes, concurrency=args.concurrency)
    work(args.concurrency, settings)
    return 0


def work(concurrency: int, settings: Settings | None = None) -> None:
    """One worker process: its event loop and its jobs (the target of each
    child of ``herald worker --processes N``)."""
    from infra import bootstrap, worker

    if settings is None:
        settings = _settings()
        logs.configure(settings.log_level)

    async def main() -> None:
        container = bootstrap.build(settings)
        try:
            await worker.run(container, concurrency=concurrency)
        finally:
            await container.close()

    # uvloop, as the API runs on under uvicorn: cheaper socket and timer work
    # per email (it is installed with uvicorn[standard]).
    try:
        import uvloop
    except ImportError:
        asyncio.run(main())
    else:
        uvloop.run(main())


def cmd_dev(args: argparse.Namespace) -> int:
    from api import dev

    return dev.run(host=args.host, port=args.port, state_dir=Path(args.state_dir))


def cmd_export_schema(args: argparse.Namespace) -> int:
    from api.schema import create_schema

    sdl = str(create_schema()) + "\n"
    if args.check:
        current = Path(args.output).read_text() if Path(args.output).exists() else ""
        if current != sdl:
            print(f"{args.output} is out of date: run `herald export-schema`", file=sys.stderr)
            return 1
        return 0
    Path(args.output).write_text(sdl)
    print(f"wrote {args.output}")
    return 0


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="herald", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = root.add_subparsers(dest="command", required=True, metavar="COMMAND")

    migrate = commands.add_parser(
        "migrate", help="bring the database schema up to date (idempotent)"
    )
    migrate.set_defaults(run=cmd_migrate)

    serve = commands.add_parser("serve", help="run the GraphQL API with uvicorn")
    serve.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default %(default)s)"
    )
    serve.add_argument(
        "--port", type=int, default=8000, help="port to listen on (default %(default)s)"
    )
    serve.set_defaults(run=cmd_serve)

    worker = commands.add_parser("worker", help="send queued emails (graceful stop on SIGTERM)")
    worker.add_argument(
        "--concurrency",
        type=_at_least_one,
        default=4,
        help="jobs processed at once by each process (default %(default)s)",
    )
    worker.add_argument(
        "--processes",
        type=_at_least_one,
        default=1,
        help="worker processes, each with its own event loop: about one per core"
        " the database and the mail server leave free (default %(default)s)",
    )
    worker.set_defaults(run=cmd_worker)

    dev = commands.add_parser(
        "dev",
        help="run everything on this machine: embedded PostgreSQL, a mail catcher, API and worker",
    )
    dev.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default %(default)s)"
    )
    dev.add_argument(
        "--port", type=int, default=8000, help="port to listen on (default %(default)s)"
    )
    dev.add_argument(
        "--state-dir",
        default=".herald",
        help="where the embedded database lives (default %(default)s)",
    )
    dev.set_defaults(run=cmd_dev)

    export = commands.add_parser("export-schema", help="write the GraphQL SDL to schema.graphql")
    export.add_argument(
        "--output", default="schema.graphql", help="file to write (default %(default)s)"
    )
    export.add_argument("--check", action="store_true", help="fail if the file is out of date")
    export.set_defaults(run=cmd_export_schema)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
