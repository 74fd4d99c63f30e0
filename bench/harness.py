"""Real processes for the benchmarks: a database, ``herald serve`` and baselines."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg

from infra import devmail, embedded, migrate
from infra.settings import Settings, database_url

HERALD = str(Path(sys.executable).with_name("herald"))


def progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@dataclass
class Process:
    name: str
    port: int
    popen: subprocess.Popen[bytes]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"


@dataclass
class Environment:
    settings: Settings
    env: dict[str, str]
    logs: Path
    processes: list[Process] = field(default_factory=list)

    def start_process(
        self, args: Sequence[str], name: str, *, health: str | None = None
    ) -> Process:
        port = devmail.free_port()
        command = [sys.executable, *args, "--port", str(port)]
        with (self.logs / f"{name}.log").open("wb") as out:
            popen = subprocess.Popen(command, env=self.env, stdout=out, stderr=subprocess.STDOUT)
        process = Process(name, port, popen)
        self.processes.append(process)
        deadline = time.monotonic() + 60
        while True:
            if popen.poll() is not None:
                raise RuntimeError(f"{name} exited: see {self.logs / (name + '.log')}")
            try:
                if health is None:
                    with socket_to(port):
                        break
                elif httpx.get(f"{process.base_url}{health}", timeout=1).status_code == 200:
                    break
            except OSError:
                pass
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start")
            time.sleep(0.1)
        return process

    def start_serve(self) -> Process:
        return self.start_process(
            ["-c", "from api.cli import main; main()", "serve"], "herald-serve", health="/healthz"
        )


@contextlib.contextmanager
def socket_to(port: int) -> Iterator[None]:
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=1):
        yield


def _with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


@contextlib.asynccontextmanager
async def environment(**overrides: str) -> AsyncIterator[Environment]:
    """A fresh, migrated database on ``DATABASE_URL``'s server or an embedded one."""
    server = None
    configured = os.environ.get("DATABASE_URL")
    if configured:
        root = database_url(configured)
    else:
        server, root = embedded.start_postgres(
            Path(tempfile.mkdtemp(prefix="herald-bench-")), delete_on_exit=True
        )
    name = f"herald_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(root, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = _with_database(root, name)
    progress(f"migrating {name} …")
    migrate.upgrade(url)
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": "1",
        "SMTP_SECURITY": "none",
        "MAIL_FROM": "Herald <bench@herald.test>",
        "SECRET_KEYS": "bench-secret-" + "b" * 32,
        "PUBLIC_URL": "http://127.0.0.1:8000",
        "LOG_LEVEL": "WARNING",
        "SUBSCRIPTION_QUEUE_SIZE": "1024",
        "WS_MAX_SUBSCRIPTIONS": "10",
        **overrides,
    }
    logs = Path(tempfile.mkdtemp(prefix="herald-bench-logs-"))
    environment = Environment(settings=Settings.from_env(env), env=env, logs=logs)
    try:
        yield environment
    finally:
        for process in environment.processes:
            process.popen.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.popen.wait(timeout=20)
        with psycopg.connect(root, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        del server
