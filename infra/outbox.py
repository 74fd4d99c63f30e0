"""The transactional outbox: a delivery record and its job, in the caller's transaction."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from typing import Any

import procrastinate
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from domain import emails, ports, users
from infra import db, jobs

log = logging.getLogger(__name__)


class SqlEmailOutbox:
    """Writes the delivery row, then defers its job on the session's own connection.

    The row is part of the caller's transaction: every email Herald means to
    send is recorded with the change that asks for it. Only the defer runs in a
    savepoint: when the queue is disabled or the defer fails, the row stays
    ``queued`` without a job, and the worker's periodic sweep defers it later,
    so nothing is lost.
    """

    def __init__(
        self,
        session: AsyncSession,
        *,
        app: procrastinate.App | None,
        clock: ports.Clock,
        mail_domain: str,
    ) -> None:
        self.session = session
        self.app = app
        self.clock = clock
        self.mail_domain = mail_domain

    async def enqueue(self, request: emails.EmailRequest) -> None:
        delivery_id = await self._record(request, self.clock.now())
        if self.app is None:
            log.warning(
                "job queue disabled: email %s (%s) left to the worker's sweep",
                delivery_id,
                request.kind,
            )
            return
        await self.defer(delivery_id)

    async def defer(self, delivery_id: uuid.UUID) -> bool:
        """Queue the job of a recorded delivery; False (and a warning) if it failed."""
        if self.app is None:
            return False
        try:
            async with self.session.begin_nested():
                # SQLAlchemy emits the SAVEPOINT lazily: ask for the connection
                # inside the block so the defer below runs within it.
                connection = await self.session.connection()
                raw = (await connection.get_raw_connection()).driver_connection
                job_id = await self.app.configure_task(
                    jobs.SEND_VERIFICATION_EMAIL, queue=jobs.QUEUE, connection=raw
                ).defer_async(delivery_id=str(delivery_id))
                await self.session.execute(
                    sa.update(db.email_deliveries)
                    .where(db.email_deliveries.c.id == delivery_id)
                    .values(job_id=job_id)
                )
        except Exception:
            # Expected here: the queue's tables missing or unreachable. Only the
            # savepoint is rolled back; the account and its delivery row stay.
            log.warning(
                "could not queue email %s; the worker's sweep will retry",
                delivery_id,
                exc_info=True,
            )
            return False
        return True

    async def _record(self, request: emails.EmailRequest, now: datetime) -> uuid.UUID:
        delivery_id = uuid.uuid4()
        account = db.users.c.id == request.user_id
        recipient: Any = request.recipient
        if recipient is None and request.user_id is not None:
            recipient = sa.select(db.users.c.email).where(account).scalar_subquery()
        locale: Any = users.DEFAULT_LOCALE
        if request.user_id is not None:
            locale = sa.func.coalesce(
                sa.select(db.users.c.locale).where(account).scalar_subquery(), locale
            )
        await self.session.execute(
            sa.insert(db.email_deliveries).values(
                id=delivery_id,
                kind=request.kind.value,
                user_id=request.user_id,
                registration_id=request.registration_id,
                recipient=recipient,
                verification_nonce=request.verification_nonce,
                link_claims=dict(request.claims) or None,
                locale=locale,
                suppressed=request.suppressed,
                status=emails.DeliveryStatus.QUEUED.value,
                # Deterministic per delivery: a resent copy is recognisably the same message.
                message_id=f"<{delivery_id}@{self.mail_domain}>",
                created_at=now,
                updated_at=now,
            )
        )
        return delivery_id
