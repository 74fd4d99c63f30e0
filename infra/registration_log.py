"""The steps of each registration: recorded with the change they report, and
announced on a PostgreSQL channel when it commits."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from domain import emails, progress
from infra import db

# The channel a registration's steps are announced on. Its payload is ids
# only ("<registration id>:<event id>"); listeners read the row itself.
CHANNEL = "herald_registration_events"


def _announced(insert_statement: sa.Insert) -> sa.Select[Any]:
    """The insert with one notification per row, in one round trip and in the
    caller's transaction: PostgreSQL delivers them at commit, never after a
    rollback."""
    inserted = insert_statement.returning(
        db.registration_events.c.id, db.registration_events.c.registration_id
    ).cte("inserted")
    return sa.select(
        sa.func.pg_notify(
            CHANNEL,
            sa.cast(inserted.c.registration_id, sa.Text) + ":" + sa.cast(inserted.c.id, sa.Text),
        )
    ).select_from(inserted)


_e = db.registration_events
_RECORD = _announced(
    sa.insert(_e).values(
        registration_id=db.param(_e.c.registration_id),
        step=db.param(_e.c.step),
        at=db.param(_e.c.at),
        will_retry=db.param(_e.c.will_retry),
        retry_at=db.param(_e.c.retry_at),
        reason=db.param(_e.c.reason),
    )
)


class SqlRegistrationLog:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def record(
        self,
        registration_id: uuid.UUID,
        step: progress.Step,
        at: datetime,
        *,
        will_retry: bool = False,
        retry_at: datetime | None = None,
        reason: str | None = None,
    ) -> None:
        await self.session.execute(
            _RECORD,
            {
                "p_registration_id": registration_id,
                "p_step": step.value,
                "p_at": at,
                "p_will_retry": will_retry,
                "p_retry_at": retry_at,
                "p_reason": reason,
            },
        )

    async def record_verified(self, user_id: uuid.UUID, nonce: int, at: datetime) -> None:
        t = db.email_deliveries
        registrations = (
            sa.select(
                t.c.registration_id,
                sa.literal(progress.Step.EMAIL_VERIFIED.value),
                sa.literal(at, sa.DateTime(timezone=True)),
            )
            .where(
                t.c.user_id == user_id,
                t.c.kind == emails.EmailKind.VERIFY_EMAIL.value,
                t.c.verification_nonce == nonce,
                t.c.registration_id.is_not(None),
            )
            .distinct()
        )
        await self.session.execute(
            _announced(
                sa.insert(db.registration_events).from_select(
                    ["registration_id", "step", "at"], registrations
                )
            )
        )


def step_from_row(row: Any) -> progress.RegistrationStep:
    return progress.RegistrationStep(
        id=row.id,
        registration_id=row.registration_id,
        step=progress.Step(row.step),
        at=row.at,
        will_retry=row.will_retry,
        retry_at=row.retry_at,
        reason=row.reason,
    )
