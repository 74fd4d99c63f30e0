"""The transactional outbox: a delivery record and its job, in the caller's transaction."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime

import procrastinate
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from domain import emails, ports
from infra import db, jobs

log = logging.getLogger(__name__)


class SqlEmailOutbox:
    """Writes the delivery row and defers its job on the session's own connection.

    Both happen inside a savepoint: when the queue is disabled or the defer
    fails, the registration still commits without them, and the worker's
    periodic sweep queues the missing email later, so nothing is lost.
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
        if self.app is None:
            log.warning(
                "job queue disabled: %s email for user %s left to the periodic sweep",
                request.kind,
                request.user_id,
            )
            return
        try:
            async with self.session.begin_nested():
                # SQLAlchemy emits the SAVEPOINT lazily: ask for the connection
                # inside the block so the defer below runs within it.
                connection = await self.session.connection()
                delivery_id = await self._record(request, self.clock.now())
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
            # Expected here: the queue's tables missing or unreachable. The
            # savepoint is rolled back; the account itself is kept.
            log.warning(
                "could not queue the %s email for user %s; the periodic sweep will retry",
                request.kind,
                request.user_id,
                exc_info=True,
            )

    async def _record(self, request: emails.EmailRequest, now: datetime) -> uuid.UUID:
        delivery_id = uuid.uuid4()
        recipient = (
            sa.select(db.users.c.email).where(db.users.c.id == request.user_id).scalar_subquery()
        )
        await self.session.execute(
            sa.insert(db.email_deliveries).values(
                id=delivery_id,
                kind=request.kind.value,
                user_id=request.user_id,
                registration_id=request.registration_id,
                recipient=recipient,
                verification_nonce=request.verification_nonce,
                status=emails.DeliveryStatus.QUEUED.value,
                # Deterministic per delivery: a resent copy is recognisably the same message.
                message_id=f"<{delivery_id}@{self.mail_domain}>",
                created_at=now,
                updated_at=now,
            )
        )
        return delivery_id
