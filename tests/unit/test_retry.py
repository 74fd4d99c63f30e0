"""Backoff for transient delivery failures, and the job's retry strategy that follows it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from procrastinate.jobs import Job

from domain import errors
from domain.delivery import Backoff
from infra.jobs import EmailRetry

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def job(attempts: int) -> Job:
    return Job(
        id=1,
        queue="emails",
        task_name="t",
        lock=None,
        queueing_lock=None,
        task_kwargs={},
        attempts=attempts,
    )


def test_delays_double_up_to_the_cap() -> None:
    backoff = Backoff(base_seconds=30, max_seconds=3600, max_attempts=10, jitter=lambda: 1.0)
    assert [backoff.delay(n) for n in range(1, 10)] == [
        30,
        60,
        120,
        240,
        480,
        960,
        1920,
        3600,
        3600,
    ]


def test_jitter_never_shortens_below_half_the_delay() -> None:
    assert Backoff(base_seconds=30, jitter=lambda: 0.0).delay(3) == 60


def test_no_retry_after_the_last_attempt() -> None:
    backoff = Backoff(base_seconds=1, max_seconds=10, max_attempts=3, jitter=lambda: 1.0)
    assert backoff.retry_at(1, NOW) == NOW + timedelta(seconds=1)
    assert backoff.retry_at(2, NOW) == NOW + timedelta(seconds=2)
    assert backoff.retry_at(3, NOW) is None


def test_the_job_is_retried_exactly_when_the_use_case_asked() -> None:
    failure = errors.DeliveryFailure(transient=True, code=451, reason="later")
    when = NOW + timedelta(seconds=42)
    decision = EmailRetry().get_retry_decision(
        exception=errors.EmailDeliveryError(failure, when), job=job(0)
    )
    assert decision is not None and decision.retry_at == when


def test_a_bug_is_not_retried() -> None:
    assert EmailRetry().get_retry_decision(exception=RuntimeError("bug"), job=job(0)) is None
