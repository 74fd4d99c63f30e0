"""The transactional outbox: a delivery record and its job, in the caller's transaction."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime

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
                await self.session.execute(_SET_JOB, {"p_id": delivery_id, "job_id": job_id})
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
        parameters = {
            "p_id": delivery_id,
            "p_kind": request.kind.value,
            "p_user_id": request.user_id,
            "p_registration_id": request.registration_id,
            "p_recipient": request.recipient,
            "p_verification_nonce": request.verification_nonce,
            "p_link_claims": dict(request.claims) or None,
            "p_suppressed": request.suppressed,
            # Deterministic per delivery: a resent copy is recognisably the same message.
            "p_message_id": f"<{delivery_id}@{self.mail_domain}>",
            "p_created_at": now,
        }
        await self.session.execute(_RECORD, parameters)
        return delivery_id


_d, _u = db.email_deliveries, db.users
_account = _u.c.id == db.param(_d.c.user_id)
_RECORD = sa.insert(_d).values(
    id=db.param(_d.c.id),
    kind=db.param(_d.c.kind),
    user_id=db.param(_d.c.user_id),
    registration_id=db.param(_d.c.registration_id),
    # Given, or the account's current address.
    recipient=sa.func.coalesce(
        db.param(_d.c.recipient), sa.select(_u.c.email).where(_account).scalar_subquery()
    ),
    verification_nonce=db.param(_d.c.verification_nonce),
    link_claims=db.param(_d.c.link_claims),
    locale=sa.func.coalesce(
        sa.select(_u.c.locale).where(_account).scalar_subquery(), users.DEFAULT_LOCALE
    ),
    suppressed=db.param(_d.c.suppressed),
    status=emails.DeliveryStatus.QUEUED.value,
    message_id=db.param(_d.c.message_id),
    created_at=db.param(_d.c.created_at),
    updated_at=db.param(_d.c.created_at),
)
_SET_JOB = sa.update(_d).where(_d.c.id == db.param(_d.c.id))
