"""Herald's procrastinate app, its tasks and the retry strategy for email.

Tasks are registered by ``register_tasks`` when the worker is built, never at
import time; the API only defers by task name.
"""

from __future__ import annotations

import logging
import random
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import procrastinate
from procrastinate import JobContext, RetryDecision
from procrastinate.jobs import Job
from procrastinate.retry import BaseRetryStrategy

from domain import accounts, delivery, errors

log = logging.getLogger(__name__)

QUEUE = "emails"
SEND_VERIFICATION_EMAIL = "send_verification_email"
REQUEUE_MISSING = "requeue_missing_verification_emails"


def create_app(database_url: str, *, pool_size: int = 10) -> procrastinate.App:
    connector = procrastinate.PsycopgConnector(
        conninfo=database_url, min_size=1, max_size=pool_size
    )
    return procrastinate.App(connector=connector)


class EmailBackoff(BaseRetryStrategy):
    """Exponential backoff with jitter, for transient delivery failures only.

    A permanent failure never reaches here as an exception: the use case records
    it and returns, so it is not retried.
    """

    def __init__(
        self,
        *,
        base_seconds: float,
        max_seconds: float,
        max_attempts: int,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.base_seconds = base_seconds
        self.max_seconds = max_seconds
        self.max_attempts = max_attempts
        self.jitter = jitter

    def delay(self, previous_attempts: int) -> float:
        ceiling = min(self.max_seconds, self.base_seconds * 2.0**previous_attempts)
        # Half fixed, half random: spreads a burst of retries without ever
        # retrying sooner than half the nominal delay.
        return ceiling / 2 + self.jitter() * ceiling / 2

    def get_retry_decision(self, *, exception: BaseException, job: Job) -> RetryDecision | None:
        if not isinstance(exception, errors.EmailDeliveryError):
            return None
        if job.attempts + 1 >= self.max_attempts:
            return None
        return RetryDecision(
            retry_at=datetime.now(UTC) + timedelta(seconds=self.delay(job.attempts))
        )


def register_tasks(
    app: procrastinate.App,
    *,
    courier: delivery.Courier,
    accounts_service: accounts.Accounts,
    retry: EmailBackoff,
    sweep_cron: str = "* * * * *",
    sweep_min_age: timedelta = timedelta(minutes=2),
) -> None:
    """Register Herald's tasks on ``app``: the email job and the sweep that
    queues verification emails whose job was never queued."""

    @app.task(name=SEND_VERIFICATION_EMAIL, queue=QUEUE, pass_context=True, retry=retry)
    async def send_verification_email(context: JobContext, delivery_id: str) -> str:
        last_attempt = context.job.attempts + 1 >= retry.max_attempts
        outcome = await delivery.deliver(uuid.UUID(delivery_id), courier, last_attempt=last_attempt)
        return outcome.value

    @app.periodic(cron=sweep_cron, periodic_id=REQUEUE_MISSING)
    @app.task(name=REQUEUE_MISSING, queue=QUEUE, queueing_lock=REQUEUE_MISSING)
    async def requeue_missing_verification_emails(timestamp: int) -> int:
        queued = await accounts.requeue_missing_verification_emails(
            accounts_service, older_than=sweep_min_age
        )
        if queued:
            log.warning("queued %d verification emails that had never been queued", queued)
        return queued
