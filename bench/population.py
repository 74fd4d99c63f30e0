"""Existing users for the register benchmark, and the plans of its hot statements.

Bulk users are written straight in SQL with ``generate_series`` (not through
the API), each with the delivery record and the registration steps a real
sign-up leaves behind, all dated before the benchmark's start (its
``mark``). Whatever a phase adds is dated after it, so ``reset`` can take the
database back to its population between phases.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg
from argon2 import PasswordHasher
from sqlalchemy import event

from bench import harness
from domain import accounts
from infra import bootstrap
from infra.settings import Settings

BULK_DOMAIN = "bulk.example.com"
_CHUNK = 100_000

_GROW = f"""
WITH new_users AS (
    INSERT INTO users (id, email, password_hash, created_at, email_verified_at, verification_nonce)
    SELECT gen_random_uuid(), 'user' || n || '@{BULK_DOMAIN}', %(hash)s,
           %(origin)s + n * interval '1 second',
           %(origin)s + n * interval '1 second' + interval '10 minutes', 1
    FROM generate_series(%(first)s::bigint, %(last)s::bigint) AS n
    RETURNING id, email, created_at
), new_deliveries AS (
    INSERT INTO email_deliveries (id, kind, user_id, registration_id, recipient, suppressed,
        verification_nonce, status, attempts, message_id, created_at, updated_at, sent_at)
    SELECT gen_random_uuid(), 'verify_email', id, gen_random_uuid(), email, false, 1, 'sent', 1,
           '<' || gen_random_uuid() || '@herald.test>', created_at,
           created_at + interval '1 second', created_at + interval '1 second'
    FROM new_users
    RETURNING registration_id, created_at
)
INSERT INTO registration_events (registration_id, step, at)
SELECT registration_id, step, created_at + offset_seconds * interval '1 second'
FROM new_deliveries
CROSS JOIN (VALUES ('email_queued', 0), ('email_sent', 1), ('email_verified', 600))
    AS steps(step, offset_seconds)
"""

_TOUCHED = "users, email_deliveries, registration_events, procrastinate_jobs, procrastinate_events"


def bulk_count(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        [(count,)] = conn.execute(
            "SELECT count(*) FROM users WHERE email LIKE %s", (f"%@{BULK_DOMAIN}",)
        ).fetchall()
    return int(count)


def grow(url: str, total: int, mark: datetime) -> float:
    """Bring the bulk users up to ``total``; returns the seconds it took, analysis included."""
    started = time.perf_counter()
    password_hash = PasswordHasher().hash("not a password anyone uses")
    origin = mark - timedelta(days=60)
    first = bulk_count(url) + 1
    with psycopg.connect(url, autocommit=True) as conn:
        for low in range(first, total + 1, _CHUNK):
            high = min(total, low + _CHUNK - 1)
            conn.execute(
                _GROW, {"hash": password_hash, "origin": origin, "first": low, "last": high}
            )
            harness.progress(
                f"  bulk users {high:,}/{total:,} ({time.perf_counter() - started:.1f} s)"
            )
        conn.execute(f"VACUUM (ANALYZE) {_TOUCHED}")
    return time.perf_counter() - started


def reset(url: str, mark: datetime) -> None:
    """Remove what the benchmark's phases added since ``mark``."""
    with psycopg.connect(url, autocommit=True) as conn:
        with conn.transaction():
            conn.execute("DELETE FROM registration_events WHERE at >= %s", (mark,))
            conn.execute("DELETE FROM email_deliveries WHERE created_at >= %s", (mark,))
            conn.execute("DELETE FROM users WHERE created_at >= %s", (mark,))
            conn.execute(
                "DELETE FROM procrastinate_jobs"
                " WHERE task_name = 'send_verification_email' AND status <> 'doing'"
            )
            conn.execute("TRUNCATE email_cooldowns, email_windows")
        conn.execute(f"VACUUM (ANALYZE) {_TOUCHED}")


@dataclass(frozen=True)
class Plan:
    name: str
    sql: str
    text: str

    @property
    def seq_scans(self) -> int:
        return self.text.count("Seq Scan")


# The statements Herald sends on the register path and in the worker's claim,
# as captured from its own repositories: (name, how to recognise it).
HOT = (
    ("insert into users, ON CONFLICT on lower(email)", "INSERT INTO users "),
    ("lookup by lower(email)", "SELECT users.id"),
    ("insert into email_deliveries", "INSERT INTO email_deliveries "),
    ("registration_events insert + pg_notify", "WITH inserted AS (INSERT INTO registration_events"),
    ("claim: UPDATE email_deliveries by id", "UPDATE email_deliveries SET status"),
    ("global emails-per-minute budget upsert", "INSERT INTO email_windows "),
)


def _renewed(parameters: dict[str, Any]) -> dict[str, Any]:
    """The same parameters for a new row: a new primary key (and a new copy of
    any text that embeds it, like a Message-ID) and a new address."""
    old = parameters.get("id", parameters.get("p_id"))
    new = uuid.uuid4()
    renewed: dict[str, Any] = {}
    for key, value in parameters.items():
        if key in ("id", "p_id") and isinstance(value, uuid.UUID):
            value = new
        elif isinstance(value, str):
            if old is not None:
                value = value.replace(str(old), str(new))
            if value.endswith("@load.example.com"):
                value = "again-" + value
        renewed[key] = value
    return renewed


async def hot_plans(settings: Settings) -> list[Plan]:
    """EXPLAIN (ANALYZE, BUFFERS) of the hot statements, each run in a
    transaction that is rolled back.

    The statements are not rewritten here: they are captured as Herald's own
    repositories send them, while the use cases run in this process (a new
    address, a known one, and a claim), then explained with their parameters.
    """
    container = bootstrap.build(settings)
    captured: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, parameters: Any, *rest: Any) -> None:
        captured.append((statement, parameters))

    event.listen(container.engine.sync_engine, "before_cursor_execute", capture)
    fresh = f"plan-{uuid.uuid4().hex[:8]}@load.example.com"
    try:
        await accounts.register(
            accounts.Register(fresh, "correct horse battery"), container.accounts
        )
        known = f"user5000@{BULK_DOMAIN}"
        await accounts.register(
            accounts.Register(known, "correct horse battery"), container.accounts
        )
        with psycopg.connect(settings.database_url, autocommit=True) as conn:
            [(delivery_id,)] = conn.execute(
                "SELECT id FROM email_deliveries WHERE recipient = %s", (fresh,)
            ).fetchall()
        async with container.courier.uow() as uow:  # rolled back on leaving
            await uow.deliveries.claim(
                delivery_id, container.courier.clock.now(), lease_seconds=120
            )
    finally:
        await container.close()

    plans = []
    with psycopg.connect(settings.database_url) as conn:
        for name, start in HOT:
            statement, parameters = next(
                (s, p) for s, p in captured if " ".join(s.split()).startswith(start)
            )
            if statement.startswith("INSERT"):
                # Inserted since: explain the insert of new rows, not a conflict.
                parameters = _renewed(parameters)
            cursor = psycopg.ClientCursor(conn)
            cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + statement, parameters)
            text = "\n".join(row[0] for row in cursor.fetchall())
            conn.rollback()
            plans.append(Plan(name, " ".join(statement.split()), text))
    return plans
