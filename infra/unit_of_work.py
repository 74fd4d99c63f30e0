"""One unit of work per use-case call: a session, its transaction and the repositories on it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import procrastinate
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from infra import outbox, registration_log, repositories


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class SqlUnitOfWork:
    def __init__(
        self,
        session: AsyncSession,
        *,
        app: procrastinate.App | None,
        clock: SystemClock,
        mail_domain: str,
    ) -> None:
        self.session = session
        self.users = repositories.SqlUserRepository(session)
        self.deliveries = repositories.SqlDeliveryRepository(session)
        self.sessions = repositories.SqlSessionRepository(session)
        self.cooldowns = repositories.SqlCooldowns(session)
        self.progress = registration_log.SqlRegistrationLog(session)
        self.outbox = outbox.SqlEmailOutbox(session, app=app, clock=clock, mail_domain=mail_domain)

    async def commit(self) -> None:
        await self.session.commit()

    async def rollback(self) -> None:
        await self.session.rollback()


class UnitOfWorkFactory:
    """Builds a fresh unit of work for each use-case call; never shared across requests."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        app: procrastinate.App | None,
        clock: SystemClock,
        mail_domain: str,
    ) -> None:
        self.sessions = sessions
        self.app = app
        self.clock = clock
        self.mail_domain = mail_domain

    @asynccontextmanager
    async def __call__(self) -> AsyncIterator[SqlUnitOfWork]:
        async with self.sessions() as session:
            uow = SqlUnitOfWork(
                session, app=self.app, clock=self.clock, mail_domain=self.mail_domain
            )
            try:
                yield uow
            finally:
                # Whatever was not committed is undone: an exception, or a use
                # case that returned early.
                await session.rollback()
