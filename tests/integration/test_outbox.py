"""The outbox guarantee on real PostgreSQL: the account, its delivery record and
its job commit together or not at all."""

from __future__ import annotations

import json

import psycopg
import pytest

from domain import accounts, errors, handlers
from infra import bootstrap
from tests import support


def rows(
    database_url: str,
) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]], list[tuple[object, ...]]]:
    with psycopg.connect(database_url) as conn:
        users = conn.execute("SELECT id, email FROM users").fetchall()
        deliveries = conn.execute(
            "SELECT id, user_id, kind, status, job_id FROM email_deliveries"
        ).fetchall()
        jobs = conn.execute(
            "SELECT id, task_name, queue_name, args FROM procrastinate_jobs"
        ).fetchall()
    return users, deliveries, jobs


async def test_commit_keeps_the_user_the_delivery_and_the_job(
    container: bootstrap.Container, database_url: str
) -> None:
    await accounts.register(
        accounts.Register("ann@example.com", "correct horse"), container.accounts
    )
    users, deliveries, jobs = rows(database_url)
    [(user_id, email)] = users
    [(delivery_id, delivery_user, kind, status, job_id)] = deliveries
    [(job_pk, task_name, queue, args)] = jobs
    assert (email, delivery_user, kind, status) == (
        "ann@example.com",
        user_id,
        "verify_email",
        "queued",
    )
    assert (task_name, queue, job_id) == ("send_verification_email", "emails", job_pk)
    # Ids only: no address, password or token in the job's arguments.
    assert args == {"delivery_id": str(delivery_id)}
    assert "ann" not in json.dumps(args) and "horse" not in json.dumps(args)


async def test_rollback_leaves_neither_user_nor_job(
    container: bootstrap.Container, database_url: str
) -> None:
    class Boom(Exception):
        pass

    with pytest.raises(Boom):
        async with container.accounts.uow() as uow:
            user = accounts.users.User.new(
                email="bob@example.com", password_hash="h", now=container.accounts.clock.now()
            )
            assert await uow.users.add(user)
            await handlers.publish(
                uow, [accounts.events.UserRegistered(user.id, user.id, user.verification_nonce)]
            )
            raise Boom
    assert rows(database_url) == ([], [], [])


async def test_a_failed_defer_keeps_the_registration_and_the_sweep_queues_its_email(
    container: bootstrap.Container, database_url: str
) -> None:
    # A real failure of the queue: its table is gone.
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("ALTER TABLE procrastinate_jobs RENAME TO procrastinate_jobs_away")
    await accounts.register(
        accounts.Register("cid@example.com", "correct horse"), container.accounts
    )
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("ALTER TABLE procrastinate_jobs_away RENAME TO procrastinate_jobs")
        conn.execute("UPDATE users SET created_at = created_at - interval '10 minutes'")
    users, deliveries, jobs = rows(database_url)
    assert len(users) == 1 and deliveries == [] and jobs == []

    assert await accounts.requeue_missing_verification_emails(container.accounts) == 1
    users, deliveries, jobs = rows(database_url)
    assert len(deliveries) == 1 and len(jobs) == 1
    assert await accounts.requeue_missing_verification_emails(container.accounts) == 0


async def test_with_the_queue_disabled_registration_succeeds_and_nothing_is_lost(
    database_url: str,
) -> None:
    disabled = bootstrap.build(support.settings(database_url, JOB_QUEUE_ENABLED="false"))
    try:
        await accounts.register(
            accounts.Register("dee@example.com", "correct horse"), disabled.accounts
        )
    finally:
        await disabled.close()
    users, deliveries, jobs = rows(database_url)
    assert len(users) == 1 and deliveries == [] and jobs == []

    enabled = bootstrap.build(support.settings(database_url))
    try:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute("UPDATE users SET created_at = created_at - interval '10 minutes'")
        assert await accounts.requeue_missing_verification_emails(enabled.accounts) == 1
    finally:
        await enabled.close()
    assert len(rows(database_url)[2]) == 1


async def test_invalid_input_touches_nothing(
    container: bootstrap.Container, database_url: str
) -> None:
    with pytest.raises(errors.InvalidInput):
        await accounts.register(
            accounts.Register("not an address", "correct horse"), container.accounts
        )
    assert rows(database_url) == ([], [], [])
