"""The outbox guarantee on real PostgreSQL: the account, its delivery record, its
first step and its job commit together or not at all."""

from __future__ import annotations

import json
from typing import Any

import psycopg
import pytest

from domain import accounts, delivery, errors, events, handlers, users
from infra import bootstrap, jobs, registration_log
from tests import support


def rows(database_url: str) -> dict[str, list[tuple[Any, ...]]]:
    with psycopg.connect(database_url) as conn:
        return {
            "users": conn.execute("SELECT id, email FROM users").fetchall(),
            "deliveries": conn.execute(
                "SELECT id, user_id, kind, status, job_id FROM email_deliveries"
            ).fetchall(),
            "jobs": conn.execute(
                "SELECT id, task_name, queue_name, args FROM procrastinate_jobs"
            ).fetchall(),
            "steps": conn.execute(
                "SELECT registration_id, step FROM registration_events"
            ).fetchall(),
        }


async def test_commit_keeps_the_user_the_delivery_the_step_and_the_job(
    container: bootstrap.Container, database_url: str
) -> None:
    started = await accounts.register(
        accounts.Register("ann@example.com", "correct horse"), container.accounts
    )
    found = rows(database_url)
    [(user_id, email)] = found["users"]
    [(delivery_id, delivery_user, kind, status, job_id)] = found["deliveries"]
    [(job_pk, task_name, queue, args)] = found["jobs"]
    assert (email, delivery_user, kind, status) == (
        "ann@example.com",
        user_id,
        "verify_email",
        "queued",
    )
    assert (task_name, queue, job_id) == ("send_verification_email", "emails", job_pk)
    assert found["steps"] == [(started.registration_id, "email_queued")]
    # Ids only: no address, password or token in the job's arguments.
    assert args == {"delivery_id": str(delivery_id)}
    assert "ann" not in json.dumps(args) and "horse" not in json.dumps(args)


async def test_rollback_leaves_nothing_and_announces_nothing(
    container: bootstrap.Container, database_url: str
) -> None:
    class Boom(Exception):
        pass

    with psycopg.connect(database_url, autocommit=True) as listener:
        listener.execute(f"LISTEN {registration_log.CHANNEL}")
        with pytest.raises(Boom):
            async with container.accounts.uow() as uow:
                now = container.accounts.clock.now()
                user = users.User.new(email="bob@example.com", password_hash="h", now=now)
                assert await uow.users.add(user)
                event = events.UserRegistered(user.id, user.id, user.verification_nonce)
                await handlers.publish(uow, [event], now)
                raise Boom
        assert list(listener.notifies(timeout=0.5)) == []
    assert rows(database_url) == {"users": [], "deliveries": [], "jobs": [], "steps": []}


async def test_a_step_is_announced_at_commit_with_ids_only(
    container: bootstrap.Container, database_url: str
) -> None:
    with psycopg.connect(database_url, autocommit=True) as listener:
        listener.execute(f"LISTEN {registration_log.CHANNEL}")
        started = await accounts.register(
            accounts.Register("cy@example.com", "correct horse"), container.accounts
        )
        [notification] = list(listener.notifies(timeout=2, stop_after=1))
        [(event_id,)] = listener.execute("SELECT id FROM registration_events").fetchall()
    assert notification.channel == registration_log.CHANNEL
    assert notification.payload == f"{started.registration_id}:{event_id}"


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
        conn.execute("UPDATE email_deliveries SET created_at = created_at - interval '10 minutes'")
    found = rows(database_url)
    assert len(found["users"]) == 1 and found["jobs"] == []
    [(_, _, _, status, job_id)] = found["deliveries"]
    assert (status, job_id) == ("queued", None)

    assert await delivery.queue_stranded(container.courier) == 1
    found = rows(database_url)
    [(_, _, _, _, job_id)] = found["deliveries"]
    [(job_pk, *_)] = found["jobs"]
    assert job_id == job_pk
    assert await delivery.queue_stranded(container.courier) == 0


async def test_with_the_queue_disabled_the_delivery_waits_for_the_workers_sweep(
    database_url: str,
) -> None:
    api = bootstrap.build(support.settings(database_url, JOB_QUEUE_ENABLED="false"))
    try:
        await accounts.register(accounts.Register("dee@example.com", "correct horse"), api.accounts)
        found = rows(database_url)
        assert len(found["deliveries"]) == 1 and found["jobs"] == []
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(
                "UPDATE email_deliveries SET created_at = created_at - interval '10 minutes'"
            )
        # The worker's side queues even where the API may not.
        assert await delivery.queue_stranded(api.courier) == 1
    finally:
        await api.close()
    assert len(rows(database_url)["jobs"]) == 1


async def test_invalid_input_touches_nothing(
    container: bootstrap.Container, database_url: str
) -> None:
    with pytest.raises(errors.InvalidInput):
        await accounts.register(
            accounts.Register("not an address", "correct horse"), container.accounts
        )
    assert rows(database_url) == {"users": [], "deliveries": [], "jobs": [], "steps": []}


async def test_the_sweep_gives_a_new_job_to_a_delivery_whose_job_ended_unfinished(
    container: bootstrap.Container, database_url: str
) -> None:
    await accounts.register(
        accounts.Register("eli@example.com", "correct horse"), container.accounts
    )
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("UPDATE email_deliveries SET created_at = created_at - interval '10 minutes'")
        # A live job: nothing to do.
        assert await delivery.queue_stranded(container.courier) == 0
        # The job's database retries ran out while the attempt held the delivery.
        conn.execute("UPDATE procrastinate_jobs SET status = 'failed'")
        conn.execute("UPDATE email_deliveries SET status = 'sending', updated_at = now()")
        assert await delivery.queue_stranded(container.courier) == 0  # still leased
        conn.execute("UPDATE email_deliveries SET updated_at = now() - interval '1 hour'")
        assert await delivery.queue_stranded(container.courier) == 1
        jobs = conn.execute("SELECT status FROM procrastinate_jobs ORDER BY id").fetchall()
        assert jobs == [("failed",), ("todo",)]
        [(job_id, last_job)] = conn.execute(
            "SELECT job_id, (SELECT max(id) FROM procrastinate_jobs) FROM email_deliveries"
        ).fetchall()
        assert job_id == last_job


async def test_pruning_forgets_old_finished_jobs_expired_cooldowns_and_sessions(
    container: bootstrap.Container, database_url: str
) -> None:
    await accounts.register(
        accounts.Register("fox@example.com", "correct horse"), container.accounts
    )
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("UPDATE procrastinate_jobs SET status = 'succeeded'")
        conn.execute("UPDATE procrastinate_events SET at = now() - interval '9 days'")
        conn.execute(
            "INSERT INTO email_cooldowns VALUES ('over', now() - interval '1 second'),"
            " ('running', now() + interval '1 minute')"
        )
        [(user_id,)] = conn.execute("SELECT id FROM users").fetchall()
        for name, expires in (("expired", "- interval '1 second'"), ("live", "+ interval '1 day'")):
            conn.execute(
                "INSERT INTO sessions VALUES (gen_random_uuid(), %s, %s, now(), now() "
                + expires
                + ", now())",
                (user_id, name),
            )
    async with container.queue.open_async():
        forgotten = await jobs.prune(container.queue, container.courier, retention_hours=168)
    assert forgotten == 2
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM procrastinate_jobs").fetchone() == (0,)
        keys = {key for (key,) in conn.execute("SELECT key FROM email_cooldowns")}
        assert "over" not in keys and "running" in keys and len(keys) == 2
        sessions = conn.execute("SELECT token_digest FROM sessions").fetchall()
        assert sessions == [("live",)]
        # The delivery record stays: it is the history.
        assert conn.execute("SELECT count(*) FROM email_deliveries").fetchone() == (1,)
