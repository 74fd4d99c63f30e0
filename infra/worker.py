"""``herald worker``: the procrastinate worker for Herald's queue, kept running."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import multiprocessing.process
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from infra import bootstrap, jobs

log = logging.getLogger(__name__)

# The longest pause before a worker that stopped on its own is started again.
MAX_RESTART_DELAY = 30.0


@dataclass
class _Restarts:
    """How long to wait before starting again something that stopped on its
    own: one second, doubling up to the cap, and one second again after a
    long run (that was a new outage, not the same one)."""

    cap: float = MAX_RESTART_DELAY
    delay: float = 1.0

    def after(self, ran_for: float) -> float:
        if ran_for > 2 * self.cap:
            self.delay = 1.0
        current = self.delay
        self.delay = min(self.delay * 2, self.cap)
        return current


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
            restarts = _Restarts()
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
                delay = restarts.after(loop.time() - started)
                log.error(
                    "the worker stopped on its own (%s); starting it again in %.0f s",
                    "no error" if failure is None else f"{type(failure).__name__}: {failure}",
                    delay,
                    exc_info=failure,
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
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


def supervise(
    target: Callable[[int], object],
    *,
    processes: int,
    concurrency: int,
    max_restart_delay: float = MAX_RESTART_DELAY,
) -> int:
    """Run ``target(concurrency)`` in ``processes`` child processes and keep
    them running until SIGTERM or SIGINT, which each child receives too (it
    drains its sends); then wait for all of them and return 0.

    One worker process is one event loop on one core; the claim of each
    delivery and procrastinate's locking keep any number of them from
    sending an email twice. A child that ends on its own is started again,
    with backoff.
    """
    context = multiprocessing.get_context("spawn")
    stop = threading.Event()
    slots = [_Slot(_Restarts(cap=max_restart_delay)) for _ in range(processes)]

    def stop_all(signum: int, frame: object) -> None:
        stop.set()
        for slot in slots:
            child = slot.child
            if child is not None and child.pid is not None and child.is_alive():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child.pid, signal.SIGTERM)

    previous = {s: signal.signal(s, stop_all) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        while not stop.is_set():
            now = time.monotonic()
            for number, slot in enumerate(slots, start=1):
                child = slot.child
                if child is not None and child.is_alive():
                    continue
                if child is not None:
                    delay = slot.restarts.after(now - slot.started_at)
                    log.error(
                        "worker process %d ended on its own (exit code %s); starting it again"
                        " in %.0f s",
                        child.pid,
                        child.exitcode,
                        delay,
                    )
                    slot.child, slot.due = None, now + delay
                if now >= slot.due and not stop.is_set():
                    slot.child = context.Process(target=target, args=(concurrency,))
                    slot.child.start()
                    slot.started_at = now
                    log.info(
                        "worker process %d started (%d of %d)", slot.child.pid, number, processes
                    )
            stop.wait(0.5)
    finally:
        stop_all(signal.SIGTERM, None)
        for slot in slots:
            if slot.child is not None:
                slot.child.join()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    log.info("all %d worker processes stopped", processes)
    return 0


@dataclass
class _Slot:
    """One of the supervisor's worker processes, and when to start it again."""

    restarts: _Restarts
    child: multiprocessing.process.BaseProcess | None = None
    started_at: float = 0.0
    due: float = 0.0  # not started again before this (monotonic seconds)
