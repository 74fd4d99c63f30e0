"""Live registration steps: one LISTEN connection per process, fanned out to watchers.

The database is the truth and notifications are only wake-ups: a watcher
replays what is recorded, then follows; after the LISTEN connection drops and
comes back, every watcher re-reads what it may have missed. A watcher has a
bounded queue; one that falls behind is closed rather than left to grow.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import uuid
from collections.abc import AsyncGenerator
from typing import Any, Final

import psycopg
import sqlalchemy as sa
from psycopg.rows import namedtuple_row
from sqlalchemy.ext.asyncio import AsyncEngine

from domain import errors, progress
from infra import db, registration_log

log = logging.getLogger(__name__)

_RESYNC: Final = object()
_OVERFLOW: Final = object()
_COLUMNS = (
    db.registration_events.c.id,
    db.registration_events.c.registration_id,
    db.registration_events.c.step,
    db.registration_events.c.at,
    db.registration_events.c.will_retry,
    db.registration_events.c.retry_at,
    db.registration_events.c.reason,
)


# TCP keepalives: the kernel notices a dead peer even when nothing is sent.
_KEEPALIVE: dict[str, Any] = {
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
}

_ONE_STEP = (
    "SELECT id, registration_id, step, at, will_retry, retry_at, reason"
    " FROM registration_events WHERE id = %s"
)


class _Watcher:
    """A bounded queue for one watcher (lighter than ``asyncio.Queue``, whose
    per-call loop lookups showed in the fan-out profile)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.items: collections.deque[object] = collections.deque()
        self.waiter: asyncio.Future[None] | None = None
        self.overflowed = False

    def offer(self, item: object) -> None:
        if self.overflowed:
            return
        if len(self.items) >= self.size:
            # Free what it holds now and leave one message: it is closed.
            self.overflowed = True
            self.items.clear()
            item = _OVERFLOW
        self.items.append(item)
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    async def get(self) -> object:
        while not self.items:
            self.waiter = asyncio.get_running_loop().create_future()
            try:
                await self.waiter
            finally:
                self.waiter = None
        return self.items.popleft()


class RegistrationHub:
    """Implements ``ports.RegistrationFeed`` for one process."""

    def __init__(
        self,
        *,
        database_url: str,
        engine: AsyncEngine,
        queue_size: int = 64,
        max_reconnect_delay: float = 5.0,
        health_interval: float = 15.0,
    ) -> None:
        self.database_url = database_url
        self.engine = engine
        self.queue_size = queue_size
        self.max_reconnect_delay = max_reconnect_delay
        self.health_interval = health_interval
        self.connected = asyncio.Event()
        self._watchers: dict[uuid.UUID, set[_Watcher]] = {}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._listen(), name="herald-registration-listener")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        self.connected.clear()

    async def _listen(self) -> None:
        delay = 0.1
        while True:
            try:
                async with (
                    await psycopg.AsyncConnection.connect(
                        self.database_url, autocommit=True, **_KEEPALIVE
                    ) as connection,
                    # A second connection of its own reads each announced step:
                    # the first is busy listening, and the pool is the requests'.
                    await psycopg.AsyncConnection.connect(
                        self.database_url,
                        autocommit=True,
                        row_factory=namedtuple_row,
                        options="-c statement_timeout=5000",
                        **_KEEPALIVE,
                    ) as reader,
                ):
                    await connection.execute(f"LISTEN {registration_log.CHANNEL}")
                    self.connected.set()
                    delay = 0.1
                    # Steps may have committed while no connection listened.
                    self._broadcast(_RESYNC)
                    while True:
                        async for notification in connection.notifies(timeout=self.health_interval):
                            await self._dispatch(notification.payload, reader)
                        # A connection that died without a word (a failover, a
                        # NAT that forgot it) fails here instead of going quiet.
                        await connection.execute("SELECT 1")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning(
                    "registration listener lost its connection (%s); reconnecting in %.1f s",
                    type(exc).__name__,
                    delay,
                )
            self.connected.clear()
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.max_reconnect_delay)

    def _broadcast(self, item: object) -> None:
        for watchers in self._watchers.values():
            for watcher in watchers:
                watcher.offer(item)

    async def _dispatch(self, payload: str, reader: psycopg.AsyncConnection[Any]) -> None:
        registration, _, event = payload.partition(":")
        try:
            watchers = self._watchers.get(uuid.UUID(registration))
            event_id = int(event)
        except ValueError:
            log.warning("ignored a malformed notification on %s", registration_log.CHANNEL)
            return
        if not watchers:
            return
        # Read once per process, however many watchers there are.
        cursor = await reader.execute(_ONE_STEP, (event_id,), prepare=True)
        steps = [registration_log.step_from_row(row) for row in await cursor.fetchall()]
        for watcher in list(watchers):
            for step in steps:
                watcher.offer(step)

    async def _read(self, condition: sa.ColumnElement[bool]) -> list[progress.RegistrationStep]:
        statement = sa.select(*_COLUMNS).where(condition).order_by(db.registration_events.c.id)
        async with self.engine.connect() as connection:
            rows = await connection.execute(statement)
            return [registration_log.step_from_row(row) for row in rows]

    async def follow(
        self, registration_id: uuid.UUID, *, after: int | None = None
    ) -> AsyncGenerator[progress.RegistrationStep, None]:
        watcher = _Watcher(self.queue_size)
        # Listen before reading the history: a step that commits in between is
        # then both read and queued, and ``seen`` drops the second copy.
        self._watchers.setdefault(registration_id, set()).add(watcher)
        seen: set[int] = set()
        t = db.registration_events
        history = t.c.registration_id == registration_id
        if after is not None:
            history = sa.and_(history, t.c.id > after)
        try:
            for step in await self._read(history):
                seen.add(step.id)
                yield step
                if step.final:
                    return
            while True:
                item = await watcher.get()
                if item is _OVERFLOW:
                    raise errors.WatchOverflow()
                fresh: list[object] = list(await self._read(history)) if item is _RESYNC else [item]
                for candidate in fresh:
                    if (
                        isinstance(candidate, progress.RegistrationStep)
                        and candidate.id not in seen
                        and (after is None or candidate.id > after)
                    ):
                        seen.add(candidate.id)
                        yield candidate
                        if candidate.final:
                            return
        finally:
            watchers = self._watchers.get(registration_id)
            if watchers is not None:
                watchers.discard(watcher)
                if not watchers:
                    del self._watchers[registration_id]
