"""Connections: only one idle for a while is pinged, a stale one is replaced
before anyone uses it, and the courier's claim runs outside a transaction."""

from __future__ import annotations

import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from domain import accounts
from infra import bootstrap, db, jobs
from tests import support


async def _backend_pid(engine: sa.ext.asyncio.AsyncEngine) -> int:
    async with engine.connect() as connection:
        return int((await connection.execute(sa.text("SELECT pg_backend_pid()"))).scalar_one())


def _kill(database_url: str, pid: int) -> None:
    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))


async def test_an_idle_connection_killed_by_the_server_is_replaced_unseen(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = db.create_engine(database_url, pool_size=1)
    try:
        first = await _backend_pid(engine)
        _kill(database_url, first)
        monkeypatch.setattr(db, "PING_AFTER_IDLE_SECONDS", 0.0)  # it has been idle long enough
        assert await _backend_pid(engine) != first
    finally:
        await engine.dispose()


async def test_a_connection_given_back_just_now_is_not_pinged(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = db.create_engine(database_url, pool_size=1)
    try:
        first = await _backend_pid(engine)
        _kill(database_url, first)
        monkeypatch.setattr(db, "PING_AFTER_IDLE_SECONDS", 3600.0)
        # No ping: the dead connection is used, fails once, and the pool is
        # recycled, so the next use gets a live one.
        with pytest.raises(sa_exc.OperationalError):
            await _backend_pid(engine)
        assert await _backend_pid(engine) != first
    finally:
        await engine.dispose()


async def test_the_job_queues_pool_replaces_an_idle_connection_killed_by_the_server(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = jobs.create_app(database_url, pool_size=1)

    async def backend_pid() -> int:
        async with app.connector.pool.connection() as connection:  # type: ignore[attr-defined]
            cursor = await connection.execute("SELECT pg_backend_pid()")
            row = await cursor.fetchone()
            assert row is not None
            return int(row[0])

    async with app.open_async():
        first = await backend_pid()
        _kill(database_url, first)
        monkeypatch.setattr(db, "PING_AFTER_IDLE_SECONDS", 0.0)
        assert await backend_pid() != first
        # Given back just now: handed out again without a check.
        monkeypatch.setattr(db, "PING_AFTER_IDLE_SECONDS", 3600.0)
        second = await backend_pid()
        _kill(database_url, second)
        with pytest.raises(psycopg.OperationalError):
            await backend_pid()


async def test_the_couriers_claim_commits_as_it_runs_with_no_transaction_around_it(
    database_url: str,
) -> None:
    container = bootstrap.build(support.settings(database_url))
    try:
        await accounts.register(
            accounts.Register("claimed@example.com", "correct horse battery"), container.accounts
        )
        with psycopg.connect(database_url, autocommit=True) as observer:
            [(delivery_id,)] = observer.execute("SELECT id FROM email_deliveries").fetchall()
            courier = container.courier
            assert courier.single_statement is not None
            async with courier.single_statement() as uow:
                claimed = await uow.deliveries.claim(
                    delivery_id, courier.clock.now(), lease_seconds=60
                )
                assert claimed is not None
                # Not committed by the unit of work yet, and already seen by others.
                status = observer.execute(
                    "SELECT status FROM email_deliveries WHERE id = %s", (delivery_id,)
                ).fetchall()
                assert status == [("sending",)]
    finally:
        await container.close()
