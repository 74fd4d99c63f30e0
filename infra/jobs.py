"""Herald's procrastinate app, its tasks and the retry strategy for email.

Tasks are registered by ``register_tasks`` when the worker is built, never at
import time; the API only defers by task name.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
import weakref
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

import procrastinate
import psycopg
import psycopg_pool
from procrastinate import RetryDecision, connector, exceptions
from procrastinate.jobs import Job
from procrastinate.retry import BaseRetryStrategy
from sqlalchemy import exc as sa_exc

from domain import delivery, errors
from infra import db

log = logging.getLogger(__name__)

QUEUE = "emails"
SEND_VERIFICATION_EMAIL = "send_verification_email"
REQUEUE_MISSING = "queue_stranded_emails"
RETRY_STALLED = "retry_stalled_email_jobs"
PRUNE = "prune_finished_work"
_FINISHED = {"include_failed": True, "include_cancelled": True, "include_aborted": True}


class _Connector(procrastinate.PsycopgConnector):
    """procrastinate's psycopg connector, with a LISTEN connection that outlives
    a database restart.

    procrastinate reconnects the worker's LISTEN connection when it drops, but
    a failure to connect again at once (the server is still shutting down, or
    not back yet) ends its listener, and procrastinate then stops the whole
    worker, which exits with status 0 as if asked to: no email is sent any more
    and nothing restarts it. Here the listener keeps trying instead; jobs
    queued while it is away are found by the worker's polling.
    """

    max_reconnect_delay = 5.0

    async def listen_notify(
        self, on_notification: connector.Notify, channels: Iterable[str]
    ) -> None:
        channels = list(channels)
        delay = 0.1
        while True:
            listening_since = time.monotonic()
            try:
                await super().listen_notify(on_notification=on_notification, channels=channels)
            except exceptions.ConnectorException as exc:
                if time.monotonic() - listening_since > self.max_reconnect_delay:
                    delay = 0.1  # it had been listening: a new outage
                log.warning(
                    "job listener could not reconnect (%s); trying again in %.1f s",
                    type(exc.__cause__ or exc).__name__,
                    delay,
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.max_reconnect_delay)


def _pool(**kwargs: Any) -> psycopg_pool.AsyncConnectionPool:
    """procrastinate's pool, with its liveness check kept off the busy path.

    procrastinate checks every connection the pool hands out: a round trip
    before each fetch of a job and each record of its end, two of the
    worker's per email, and the fetches run one at a time. As in
    ``db.create_engine``, only a connection idle for ``PING_AFTER_IDLE_SECONDS``
    is checked; a connection that dies under load fails one query, which
    procrastinate's worker survives (and ``herald worker`` restarts it).
    """
    returned_at: weakref.WeakKeyDictionary[psycopg.AsyncConnection[Any], float] = (
        weakref.WeakKeyDictionary()
    )

    async def check_if_idle(connection: psycopg.AsyncConnection[Any]) -> None:
        since = returned_at.get(connection)  # None: connected just now
        if since is not None and time.monotonic() - since >= db.PING_AFTER_IDLE_SECONDS:
            await psycopg_pool.AsyncConnectionPool.check_connection(connection)

    async def note_return(connection: psycopg.AsyncConnection[Any]) -> None:
        returned_at[connection] = time.monotonic()

    kwargs.update(check=check_if_idle, reset=note_return)
    return psycopg_pool.AsyncConnectionPool(**kwargs)


def create_app(database_url: str, *, pool_size: int = 10) -> procrastinate.App:
    return procrastinate.App(
        connector=_Connector(
            conninfo=database_url, min_size=1, max_size=pool_size, pool_factory=_pool
        )
    )


_DATABASE_DOWN = (
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    sa_exc.TimeoutError,  # no pooled connection in time
    psycopg.OperationalError,
)


class EmailRetry(BaseRetryStrategy):
    """Retries a job exactly when the delivery use case asked for it.

    The schedule (backoff, jitter, attempt limit) is the domain's
    ``delivery.Backoff``, so the time a watcher is told ("retrying at …") is the
    time the job runs again. Any other exception is a bug: not retried.
    """

    def get_retry_decision(self, *, exception: BaseException, job: Job) -> RetryDecision | None:
        if isinstance(exception, errors.EmailDeliveryError):
            return RetryDecision(retry_at=exception.retry_at)
        if isinstance(exception, errors.DeliveryLeased):
            # A job retried while the attempt it replaces may still be sending:
            # try again once that attempt's lease is over.
            return RetryDecision(retry_at=exception.until)
        if isinstance(exception, _DATABASE_DOWN) and job.attempts < 20:
            # The database went away mid-job: run the job again once it is
            # back. A claim it had committed is waited out through its lease;
            # if these retries run out, the sweep gives the delivery a new job.
            return RetryDecision(retry_in={"seconds": min(300, 5 * 2**job.attempts)})
        return None


async def prune(app: procrastinate.App, courier: delivery.Courier, *, retention_hours: int) -> int:
    """Delete finished email jobs older than the retention, cooldowns that are
    over and sessions that expired. The delivery record keeps the history; job
    rows are only the queue's. Returns how many cooldowns and sessions were
    forgotten."""
    await app.job_manager.delete_old_jobs(nb_hours=retention_hours, queue=QUEUE, **_FINISHED)
    async with courier.uow() as uow:
        now = courier.clock.now()
        forgotten = await uow.cooldowns.prune(now) + await uow.sessions.prune(now)
        await uow.commit()
    return forgotten


def register_tasks(
    app: procrastinate.App,
    *,
    courier: delivery.Courier,
    sweep_cron: str = "* * * * *",
    sweep_min_age: timedelta = timedelta(minutes=2),
    stalled_seconds: float = 30,
    retention_hours: int = 168,
) -> None:
    """Register Herald's tasks on ``app``: the email job and the sweep that
    queues verification emails whose job was never queued."""

    @app.task(name=SEND_VERIFICATION_EMAIL, queue=QUEUE, retry=EmailRetry())
    async def send_verification_email(delivery_id: str) -> str:
        return (await delivery.deliver(uuid.UUID(delivery_id), courier)).value

    @app.periodic(cron=sweep_cron, periodic_id=REQUEUE_MISSING)
    @app.task(name=REQUEUE_MISSING, queue=QUEUE, queueing_lock=REQUEUE_MISSING)
    async def queue_stranded_emails(timestamp: int) -> int:
        queued = await delivery.queue_stranded(courier, older_than=sweep_min_age)
        if queued:
            log.warning("queued %d emails that no job was going to send", queued)
        return queued

    @app.periodic(cron=sweep_cron, periodic_id=RETRY_STALLED)
    @app.task(name=RETRY_STALLED, queue=QUEUE, queueing_lock=RETRY_STALLED)
    async def retry_stalled_email_jobs(timestamp: int) -> int:
        # A worker killed mid-send (SIGKILL, lost machine) leaves its job
        # "doing" forever; once its heartbeat is old, run the job again. The
        # delivery's lease and its "sent" status keep that from sending twice
        # what was recorded as sent.
        stalled = list(
            await app.job_manager.get_stalled_jobs(
                queue=QUEUE,
                task_name=SEND_VERIFICATION_EMAIL,
                seconds_since_heartbeat=stalled_seconds,
            )
        )
        for job in stalled:
            await app.job_manager.retry_job(job)
        if stalled:
            log.warning("retried %d email jobs of workers that stopped answering", len(stalled))
        return len(stalled)

    @app.periodic(cron="17 * * * *", periodic_id=PRUNE)
    @app.task(name=PRUNE, queue=QUEUE, queueing_lock=PRUNE)
    async def prune_finished_work(timestamp: int) -> int:
        return await prune(app, courier, retention_hours=retention_hours)
