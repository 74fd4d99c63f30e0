"""``herald worker``: the procrastinate worker for Herald's queue, kept running."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from infra import bootstrap, jobs

log = logging.getLogger(__name__)

# The longest pause before a worker that stopped on its own is started again.
MAX_RESTART_DELAY = 30.0


async def run(
    container: bootstrap.Container, *, concurrency: int, install_signal_handlers: bool = True
) -> None:
    """Process email jobs until stopped. On SIGTERM or SIGINT (or when this
    coroutine is cancelled) the worker stops taking jobs and lets the ones in
    flight finish before it returns.

    procrastinate's worker ends itself when the database stays away longer
    than its pool waits (a failed heartbeat, a fetch that timed out), and
    sometimes as if asked to stop. Nobody asked, so it is started again, with
    backoff, until someone does: a worker must outlive the database's outages.
    """
    container.register_tasks()
    settings = container.settings
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    if install_signal_handlers:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
    try:
        async with container.queue.open_async():
            delay = 1.0
            while not stop.is_set():
                log.info("worker started on queue %r with concurrency %d", jobs.QUEUE, concurrency)
                started = loop.time()
                worker = asyncio.create_task(
                    container.queue.run_worker_async(
                        queues=[jobs.QUEUE],
                        concurrency=concurrency,
                        fetch_job_polling_interval=settings.worker_poll_seconds,
                        install_signal_handlers=False,
                        update_heartbeat_interval=max(1.0, settings.worker_stalled_seconds / 4),
                        stalled_worker_timeout=settings.worker_stalled_seconds,
                    )
                )
                await _until_done_or_stopped(worker, stop)
                if stop.is_set():
                    break
                failure = worker.exception()
                if loop.time() - started > 2 * MAX_RESTART_DELAY:
                    delay = 1.0  # it had been working: a new outage
                log.error(
                    "the worker stopped on its own (%s); starting it again in %.0f s",
                    "no error" if failure is None else f"{type(failure).__name__}: {failure}",
                    delay,
                    exc_info=failure,
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
                delay = min(delay * 2, MAX_RESTART_DELAY)
    finally:
        if install_signal_handlers:
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(signum)
    log.info("worker stopped")


async def _until_done_or_stopped(worker: asyncio.Task[None], stop: asyncio.Event) -> None:
    """Wait for the worker to end; on a stop (or a cancellation of this
    coroutine) cancel it, which procrastinate turns into a graceful stop."""
    stopped = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({worker, stopped}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        stop.set()
        raise
    finally:
        stopped.cancel()
        if stop.is_set() and not worker.done():
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker
