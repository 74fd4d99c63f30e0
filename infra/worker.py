"""``herald worker``: the procrastinate worker for Herald's queue."""

from __future__ import annotations

import logging

from infra import bootstrap, jobs

log = logging.getLogger(__name__)


async def run(
    container: bootstrap.Container, *, concurrency: int, install_signal_handlers: bool = True
) -> None:
    """Process email jobs until stopped. On SIGTERM or SIGINT the worker stops
    taking jobs and lets the ones in flight finish before it returns."""
    container.register_tasks()
    settings = container.settings
    async with container.queue.open_async():
        log.info("worker started on queue %r with concurrency %d", jobs.QUEUE, concurrency)
        await container.queue.run_worker_async(
            queues=[jobs.QUEUE],
            concurrency=concurrency,
            fetch_job_polling_interval=settings.worker_poll_seconds,
            install_signal_handlers=install_signal_handlers,
            update_heartbeat_interval=max(1.0, settings.worker_stalled_seconds / 4),
            stalled_worker_timeout=settings.worker_stalled_seconds,
        )
    log.info("worker stopped")
