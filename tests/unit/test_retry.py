"""Backoff for transient delivery failures."""

from __future__ import annotations

import pytest
from procrastinate.jobs import Job

from domain import errors
from infra.jobs import EmailBackoff


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


TRANSIENT = errors.EmailDeliveryError(
    errors.DeliveryFailure(transient=True, code=451, reason="later")
)


def test_delays_double_up_to_the_cap() -> None:
    strategy = EmailBackoff(base_seconds=30, max_seconds=3600, max_attempts=8, jitter=lambda: 1.0)
    assert [strategy.delay(n) for n in range(9)] == [30, 60, 120, 240, 480, 960, 1920, 3600, 3600]


def test_jitter_never_shortens_below_half_the_delay() -> None:
    low = EmailBackoff(base_seconds=30, max_seconds=3600, max_attempts=8, jitter=lambda: 0.0)
    assert low.delay(2) == 60


def test_only_transient_delivery_errors_are_retried_and_only_up_to_the_limit() -> None:
    strategy = EmailBackoff(base_seconds=1, max_seconds=10, max_attempts=3)
    assert strategy.get_retry_decision(exception=TRANSIENT, job=job(0)) is not None
    assert strategy.get_retry_decision(exception=TRANSIENT, job=job(1)) is not None
    assert strategy.get_retry_decision(exception=TRANSIENT, job=job(2)) is None
    assert strategy.get_retry_decision(exception=RuntimeError("bug"), job=job(0)) is None


@pytest.mark.parametrize("attempts", [0, 3])
def test_the_retry_is_scheduled_in_the_future(attempts: int) -> None:
    strategy = EmailBackoff(base_seconds=5, max_seconds=60, max_attempts=8)
    decision = strategy.get_retry_decision(exception=TRANSIENT, job=job(attempts))
    assert decision is not None and decision.retry_at is not None
