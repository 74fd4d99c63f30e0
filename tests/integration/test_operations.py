"""The operator's use cases on real PostgreSQL: keyset pages, requeue, counts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from domain import accounts, emails, errors, operations
from infra import bootstrap
from tests import support


async def register(container: bootstrap.Container, count: int) -> None:
    for n in range(count):
        await accounts.register(
            accounts.Register(f"user{n}@example.com", "correct horse"), container.accounts
        )


async def test_pages_cover_every_delivery_once_even_when_timestamps_tie(
    container: bootstrap.Container, database_url: str
) -> None:
    await register(container, 7)
    with psycopg.connect(database_url) as conn:
        # Three share one instant: the id must order them, or a page boundary
        # between them would skip or repeat a delivery.
        conn.execute(
            "UPDATE email_deliveries SET created_at = %s WHERE id IN "
            "(SELECT id FROM email_deliveries ORDER BY id LIMIT 3)",
            (datetime(2026, 1, 1, tzinfo=UTC),),
        )
        expected = [
            row[0]
            for row in conn.execute(
                "SELECT id FROM email_deliveries ORDER BY created_at DESC, id DESC"
            )
        ]
    seen = []
    after = None
    while True:
        page = await operations.list_deliveries(
            support.ADMIN_KEY,
            operations.ListDeliveries(first=2, after=after),
            container.operations,
        )
        seen += [d.id for d in page.deliveries]
        if not page.has_next_page:
            break
        after = page.end_cursor
    assert seen == expected


async def test_a_failed_delivery_is_requeued_with_a_new_job_and_counted(
    container: bootstrap.Container, database_url: str
) -> None:
    await register(container, 2)
    with psycopg.connect(database_url) as conn:
        [(failed_id, old_job)] = conn.execute(
            "UPDATE email_deliveries SET status = 'failed', attempts = 8, last_smtp_code = 550, "
            "last_error = '5.1.1 no such user' "
            "WHERE id = (SELECT min(id::text)::uuid FROM email_deliveries) RETURNING id, job_id"
        ).fetchall()
        conn.execute(
            "UPDATE email_deliveries SET created_at = created_at - interval '2 hours' "
            "WHERE id <> %s",
            (failed_id,),
        )
    stats = await operations.delivery_stats(support.ADMIN_KEY, container.operations)
    failed, queued = emails.DeliveryStatus.FAILED, emails.DeliveryStatus.QUEUED
    assert (stats.last_hour[failed], stats.last_hour.total) == (1, 1)
    assert (stats.last_day[failed], stats.last_day[queued], stats.last_day.total) == (1, 1, 2)

    record = await operations.retry_delivery(
        support.ADMIN_KEY, str(failed_id), container.operations
    )
    assert (record.status, record.attempts, record.manual_retries) == (queued, 0, 1)
    # The last error stays for the operator to read until a new attempt.
    assert (record.last_smtp_code, record.last_error) == (550, "5.1.1 no such user")
    with psycopg.connect(database_url) as conn:
        [(job_id, status, task)] = conn.execute(
            "SELECT d.job_id, j.status::text, j.task_name FROM email_deliveries d "
            "JOIN procrastinate_jobs j ON j.id = d.job_id WHERE d.id = %s",
            (failed_id,),
        ).fetchall()
        steps = conn.execute(
            "SELECT e.step FROM registration_events e JOIN email_deliveries d "
            "ON d.registration_id = e.registration_id WHERE d.id = %s ORDER BY e.id",
            (failed_id,),
        ).fetchall()
    assert job_id != old_job and status == "todo" and task == "send_verification_email"
    assert steps == [("email_queued",), ("email_queued",)]
    fetched = await operations.get_delivery(support.ADMIN_KEY, str(failed_id), container.operations)
    assert fetched == record
    newest = await operations.list_deliveries(
        support.ADMIN_KEY,
        operations.ListDeliveries(status=queued, first=1),
        container.operations,
    )
    assert [d.id for d in newest.deliveries] == [failed_id] and newest.has_next_page
    assert datetime.now(UTC) - record.updated_at < timedelta(minutes=1)


async def test_a_failed_verification_email_whose_link_was_superseded_is_not_retried(
    container: bootstrap.Container, database_url: str
) -> None:
    await register(container, 1)
    with psycopg.connect(database_url) as conn:
        [(failed_id,)] = conn.execute(
            "UPDATE email_deliveries SET status = 'failed' RETURNING id"
        ).fetchall()
        # A newer link was sent since (resendVerificationEmail bumps the nonce).
        conn.execute("UPDATE users SET verification_nonce = verification_nonce + 1")
    with pytest.raises(errors.DeliveryNotRetryable) as refused:
        await operations.retry_delivery(support.ADMIN_KEY, str(failed_id), container.operations)
    assert refused.value.status == "failed" and "superseded" in refused.value.message
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT status, manual_retries FROM email_deliveries").fetchall()
    assert rows == [("failed", 0)]
