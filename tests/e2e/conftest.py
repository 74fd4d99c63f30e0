"""Real processes on loopback: ``herald serve``, ``herald worker`` and an SMTP sink."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session

from infra import devmail
from tests import support

HERALD = str(Path(sys.executable).with_name("herald"))


class ScriptedSink(devmail.MailCatcher):
    """Accepts mail, except that the first DATA commands get the scripted replies."""

    def __init__(self) -> None:
        super().__init__()
        self.script: list[str] = []
        self.attempts = 0
        self.hold_seconds = 0.0  # how long to keep each message before answering
        self.hold_first_only = False
        self.receiving = threading.Event()

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.attempts += 1
        self.receiving.set()
        if self.hold_seconds and not (self.hold_first_only and self.attempts > 1):
            await asyncio.sleep(self.hold_seconds)
        if self.script:
            return self.script.pop(0)
        return await super().handle_DATA(server, session, envelope)

    def wait_for(self, count: int, timeout: float = 30) -> list[devmail.CaughtMessage]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.messages) >= count:
                return self.messages
            time.sleep(0.05)
        raise AssertionError(f"expected {count} messages, the sink has {len(self.messages)}")


@pytest.fixture
def sink() -> Iterator[ScriptedSink]:
    handler = ScriptedSink()
    controller = devmail.start(handler)
    handler.port = controller.port  # type: ignore[attr-defined]
    yield handler
    controller.stop()


@dataclass
class Herald:
    base_url: str
    database_url: str
    logs: Path
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    log_files: dict[str, Path] = field(default_factory=dict)
    worker_env: dict[str, str] = field(default_factory=dict)

    def start_worker(self, *options: str) -> None:
        """Start ``herald worker`` (once) against this API's database and sink."""
        assert "worker" not in self.processes
        log = self.log_files["worker"] = self.logs / f"worker-{id(self)}.log"
        with log.open("wb") as out:
            self.processes["worker"] = subprocess.Popen(
                [HERALD, "worker", "--concurrency", "2", *options],
                env=self.worker_env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def log(self, name: str) -> str:
        return self.log_files[name].read_text()

    def post(
        self, query: str, variables: dict[str, Any] | None = None, *, bearer: str | None = None
    ) -> dict[str, Any]:
        """The whole response body of a GraphQL request, errors included."""
        response = httpx.post(
            f"{self.base_url}/graphql",
            json={"query": query, "variables": variables or {}},
            headers={} if bearer is None else {"Authorization": f"Bearer {bearer}"},
            timeout=30,
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def graphql(
        self, query: str, variables: dict[str, Any] | None = None, *, bearer: str | None = None
    ) -> dict[str, Any]:
        """The data of a GraphQL request that must not fail."""
        body = self.post(query, variables, bearer=bearer)
        assert "errors" not in body, body
        data: dict[str, Any] = body["data"]
        return data

    def sql(self, query: str, *params: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            cursor = conn.execute(query, params)
            return cursor.fetchall() if cursor.description else []


def _wait_healthy(base_url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"herald serve exited early:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{base_url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"herald serve did not become healthy:\n{log.read_text()[-3000:]}")


def _stop(name: str, process: subprocess.Popen[bytes], log: Path) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise AssertionError(
                f"herald {name} ignored SIGTERM:\n{log.read_text()[-3000:]}"
            ) from None


StartHerald = Callable[..., Herald]


@contextmanager
def launcher(database_url: str, sink: ScriptedSink, logs: Path) -> Iterator[StartHerald]:
    """Starts Herald processes on ``database_url``; stops them all on exit and
    checks that each one stopped cleanly."""
    started: list[Herald] = []

    def start(
        *, worker: bool = True, worker_overrides: dict[str, Any] | None = None, **overrides: Any
    ) -> Herald:
        port = devmail.free_port()
        base_url = f"http://127.0.0.1:{port}"
        env = {
            **os.environ,
            **support.environment(
                database_url,
                SMTP_PORT=sink.port,  # type: ignore[attr-defined]
                PUBLIC_URL=base_url,
                **overrides,
            ),
        }
        herald = Herald(base_url=base_url, database_url=database_url, logs=logs)
        serve_log = herald.log_files["serve"] = logs / f"serve-{port}.log"
        with serve_log.open("wb") as out:
            herald.processes["serve"] = subprocess.Popen(
                [HERALD, "serve", "--port", str(port)],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        started.append(herald)
        _wait_healthy(base_url, herald.processes["serve"], serve_log)
        herald.worker_env = {**env, **{k: str(v) for k, v in (worker_overrides or {}).items()}}
        if worker:
            herald.start_worker()
        return herald

    yield start
    for herald in started:
        for name, process in herald.processes.items():
            _stop(name, process, herald.log_files[name])
        for name, process in herald.processes.items():
            assert process.returncode == 0, (
                f"herald {name} exited with {process.returncode}:\n{herald.log(name)[-3000:]}"
            )


@pytest.fixture
def start_herald(database_url: str, sink: ScriptedSink, tmp_path: Path) -> Iterator[StartHerald]:
    with launcher(database_url, sink, tmp_path) as start:
        yield start
