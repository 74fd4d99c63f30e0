"""SQLAlchemy implementations of the domain's repositories (Core, no ORM mapping)."""

from __future__ import annotations

import hashlib
import math
import uuid
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from domain import emails, errors, sessions, users
from infra import db

_USER_COLUMNS = (
    db.users.c.id,
    db.users.c.email,
    db.users.c.password_hash,
    db.users.c.created_at,
    db.users.c.email_verified_at,
    db.users.c.verification_nonce,
    db.users.c.locale,
    db.users.c.password_contested,
    db.users.c.registration_attempt_hash,
)


def _user(row: Any) -> users.User:
    return users.User(
        id=row.id,
        email=row.email,
        password_hash=row.password_hash,
        created_at=row.created_at,
        email_verified_at=row.email_verified_at,
        verification_nonce=row.verification_nonce,
        locale=row.locale,
        password_contested=row.password_contested,
        registration_attempt_hash=row.registration_attempt_hash,
    )


_u = db.users
# The columns come from the parameters' keys. The unique index on lower(email)
# makes a concurrent second insert of one address wait for the first and then
# do nothing.
_ADD_USER = (
    insert(_u).on_conflict_do_nothing(index_elements=[sa.func.lower(_u.c.email)]).returning(_u.c.id)
)
_USER_BY_EMAIL = sa.select(*_USER_COLUMNS).where(
    sa.func.lower(_u.c.email) == sa.func.lower(db.param(_u.c.email))
)


class SqlUserRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, user: users.User) -> bool:
        values = {
            "id": user.id,
            "email": user.email,
            "password_hash": user.password_hash,
            "created_at": user.created_at,
            "email_verified_at": user.email_verified_at,
            "verification_nonce": user.verification_nonce,
            "locale": user.locale,
        }
        return (await self.session.execute(_ADD_USER, values)).first() is not None

    async def get_by_email(self, email: str) -> users.User | None:
        row = (await self.session.execute(_USER_BY_EMAIL, {"p_email": email})).first()
        return None if row is None else _user(row)

    async def bump_verification_nonce(self, user_id: uuid.UUID) -> int:
        statement = (
            sa.update(db.users)
            .where(db.users.c.id == user_id)
            .values(verification_nonce=db.users.c.verification_nonce + 1)
            .returning(db.users.c.verification_nonce)
        )
        return int((await self.session.execute(statement)).scalar_one())

    async def mark_verified(
        self, user_id: uuid.UUID, email: str, nonce: int, at: datetime
    ) -> users.User | None:
        # One statement: of two concurrent calls with one token, the second
        # waits on the row lock, re-checks the WHERE clause and matches nothing.
        statement = (
            sa.update(db.users)
            .where(
                db.users.c.id == user_id,
                sa.func.lower(db.users.c.email) == sa.func.lower(email),
                db.users.c.verification_nonce == nonce,
                db.users.c.email_verified_at.is_(None),
            )
            .values(email_verified_at=at)
            .returning(*_USER_COLUMNS)
        )
        row = (await self.session.execute(statement)).first()
        return None if row is None else _user(row)

    async def get(self, user_id: uuid.UUID) -> users.User | None:
        statement = sa.select(*_USER_COLUMNS).where(db.users.c.id == user_id)
        row = (await self.session.execute(statement)).first()
        return None if row is None else _user(row)

    async def remember_registration(self, user_id: uuid.UUID, password_hash: str) -> None:
        t = db.users
        unverified = t.c.email_verified_at.is_(None)
        await self.session.execute(
            sa.update(t)
            .where(t.c.id == user_id)
            .values(
                password_hash=sa.case((unverified, password_hash), else_=t.c.password_hash),
                password_contested=sa.case((unverified, True), else_=t.c.password_contested),
                registration_attempt_hash=sa.case(
                    (unverified, t.c.registration_attempt_hash), else_=password_hash
                ),
            )
        )

    async def contest_password(self, user_id: uuid.UUID) -> None:
        await self.session.execute(
            sa.update(db.users).where(db.users.c.id == user_id).values(password_contested=True)
        )

    async def replace_password(
        self, user_id: uuid.UUID, *, current_hash: str, new_hash: str
    ) -> bool:
        statement = (
            sa.update(db.users)
            .where(db.users.c.id == user_id, db.users.c.password_hash == current_hash)
            .values(password_hash=new_hash, password_contested=False)
            .returning(db.users.c.id)
        )
        return (await self.session.execute(statement)).first() is not None

    async def change_email(
        self,
        user_id: uuid.UUID,
        *,
        current: str,
        new: str,
        nonce: int,
        password_hash: str,
        at: datetime,
    ) -> users.User | None:
        t = db.users
        squatter = sa.delete(t).where(
            sa.func.lower(t.c.email) == sa.func.lower(new),
            t.c.email_verified_at.is_(None),
            t.c.id != user_id,
        )
        statement = (
            sa.update(t)
            .where(
                t.c.id == user_id,
                sa.func.lower(t.c.email) == sa.func.lower(current),
                t.c.verification_nonce == nonce,
                t.c.password_hash == password_hash,
            )
            .values(
                email=new,
                email_verified_at=at,
                verification_nonce=t.c.verification_nonce + 1,
            )
            .returning(*_USER_COLUMNS)
        )
        try:
            # A savepoint: the unique index's refusal must not end the transaction.
            async with self.session.begin_nested():
                await self.session.execute(squatter)
                row = (await self.session.execute(statement)).first()
        except IntegrityError:
            raise errors.AddressUnavailable() from None
        return None if row is None else _user(row)


class SqlSessionRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, session: sessions.Session, *, password_hash: str) -> bool:
        u = db.users
        # FOR SHARE: a reset that changes the hash waits for this insert to
        # commit (and then deletes the session with the others), or this
        # insert waits for the reset and then finds the hash changed.
        account = (
            sa.select(
                sa.literal(session.id, pg.UUID(as_uuid=True)),
                u.c.id,
                sa.literal(session.token_digest),
                sa.literal(session.created_at, sa.DateTime(timezone=True)),
                sa.literal(session.expires_at, sa.DateTime(timezone=True)),
                sa.literal(session.created_at, sa.DateTime(timezone=True)),
            )
            .where(u.c.id == session.user_id, u.c.password_hash == password_hash)
            .with_for_update(read=True)
        )
        statement = (
            sa.insert(db.sessions)
            .from_select(
                ["id", "user_id", "token_digest", "created_at", "expires_at", "last_used_at"],
                account,
            )
            .returning(db.sessions.c.id)
        )
        return (await self.session.execute(statement)).first() is not None

    async def user_of(self, token_digest: str, now: datetime) -> users.User | None:
        s = db.sessions
        # One statement: note the use (at most once a minute, to spare writes)
        # and read the account.
        touched = (
            sa.update(s)
            .where(
                s.c.token_digest == token_digest,
                s.c.expires_at > now,
                s.c.last_used_at < now - timedelta(minutes=1),
            )
            .values(last_used_at=now)
        )
        await self.session.execute(touched)
        statement = (
            sa.select(*_USER_COLUMNS)
            .select_from(s.join(db.users, db.users.c.id == s.c.user_id))
            .where(s.c.token_digest == token_digest, s.c.expires_at > now)
        )
        row = (await self.session.execute(statement)).first()
        return None if row is None else _user(row)

    async def revoke(self, token_digest: str) -> bool:
        s = db.sessions
        deleted = await self.session.execute(
            sa.delete(s).where(s.c.token_digest == token_digest).returning(s.c.id)
        )
        return deleted.first() is not None

    async def revoke_all(self, user_id: uuid.UUID) -> int:
        s = db.sessions
        deleted = await self.session.execute(
            sa.delete(s).where(s.c.user_id == user_id).returning(s.c.id)
        )
        return len(deleted.all())

    async def prune(self, now: datetime) -> int:
        s = db.sessions
        deleted = await self.session.execute(sa.delete(s).where(s.c.expires_at <= now))
        return int(deleted.rowcount)  # type: ignore[attr-defined]


# procrastinate's own table, read (never written) to tell live jobs from ended ones.
_PROCRASTINATE_JOBS = sa.table("procrastinate_jobs", sa.column("id"), sa.column("status"))

_DELIVERY_COLUMNS = (
    db.email_deliveries.c.id,
    db.email_deliveries.c.kind,
    db.email_deliveries.c.user_id,
    db.email_deliveries.c.registration_id,
    db.email_deliveries.c.recipient,
    db.email_deliveries.c.suppressed,
    db.email_deliveries.c.attempts,
    db.email_deliveries.c.message_id,
    db.email_deliveries.c.verification_nonce,
    db.email_deliveries.c.link_claims,
    db.email_deliveries.c.locale,
)


_d = db.email_deliveries
# A delivery in "sending" is still someone's unless its attempt began before
# the lease's start: then that worker died mid-send.
_CLAIM = (
    sa.update(_d)
    .where(
        _d.c.id == db.param(_d.c.id),
        sa.or_(
            _d.c.status == emails.DeliveryStatus.QUEUED,
            sa.and_(
                _d.c.status == emails.DeliveryStatus.SENDING,
                _d.c.updated_at < sa.bindparam("p_lease_start", type_=_d.c.updated_at.type),
            ),
        ),
    )
    .values(
        status=emails.DeliveryStatus.SENDING,
        attempts=_d.c.attempts + 1,
        updated_at=db.param(_d.c.updated_at),
    )
    .returning(*_DELIVERY_COLUMNS)
)
_HELD_SINCE = sa.select(_d.c.updated_at).where(
    _d.c.id == db.param(_d.c.id), _d.c.status == emails.DeliveryStatus.SENDING
)
# The SET clause comes from the parameters' keys: an attempt's outcome, which
# applies only to a delivery still being sent.
_SETTLE = (
    sa.update(_d)
    .where(_d.c.id == db.param(_d.c.id), _d.c.status == emails.DeliveryStatus.SENDING)
    .returning(_d.c.id)
)


class SqlDeliveryRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def claim(
        self, delivery_id: uuid.UUID, now: datetime, *, lease_seconds: float
    ) -> emails.Delivery | None:
        lease_start = now - timedelta(seconds=lease_seconds)
        parameters = {"p_id": delivery_id, "p_updated_at": now, "p_lease_start": lease_start}
        row = (await self.session.execute(_CLAIM, parameters)).first()
        if row is None:
            held = await self.session.execute(_HELD_SINCE, {"p_id": delivery_id})
            started = held.scalar_one_or_none()
            if started is not None:
                raise errors.DeliveryLeased(started + timedelta(seconds=lease_seconds))
            return None
        return emails.Delivery(
            id=row.id,
            kind=emails.EmailKind(row.kind),
            user_id=row.user_id,
            registration_id=row.registration_id,
            recipient=row.recipient,
            suppressed=row.suppressed,
            attempts=row.attempts,
            message_id=row.message_id,
            verification_nonce=row.verification_nonce,
            claims=row.link_claims or {},
            locale=row.locale,
        )

    async def _settle(self, delivery_id: uuid.UUID, **values: Any) -> bool:
        result = await self.session.execute(_SETTLE, {"p_id": delivery_id, **values})
        return result.first() is not None

    async def mark_sent(self, delivery_id: uuid.UUID, now: datetime) -> bool:
        return await self._settle(
            delivery_id, status=emails.DeliveryStatus.SENT, sent_at=now, updated_at=now
        )

    async def mark_retrying(
        self, delivery_id: uuid.UUID, now: datetime, code: int | None, reason: str
    ) -> bool:
        return await self._settle(
            delivery_id,
            status=emails.DeliveryStatus.QUEUED,
            last_smtp_code=code,
            last_error=reason[:1000],
            updated_at=now,
        )

    async def mark_failed(
        self, delivery_id: uuid.UUID, now: datetime, code: int | None, reason: str
    ) -> bool:
        return await self._settle(
            delivery_id,
            status=emails.DeliveryStatus.FAILED,
            last_smtp_code=code,
            last_error=reason[:1000],
            updated_at=now,
        )

    async def mark_suppressed(self, delivery_id: uuid.UUID, now: datetime) -> bool:
        return await self._settle(
            delivery_id, status=emails.DeliveryStatus.SUPPRESSED, updated_at=now
        )

    async def received(self, user_id: uuid.UUID, nonce: int, at: datetime) -> list[uuid.UUID]:
        t = db.email_deliveries
        statement = (
            sa.update(t)
            .where(
                t.c.user_id == user_id,
                t.c.kind == emails.EmailKind.VERIFY_EMAIL.value,
                t.c.verification_nonce == nonce,
                # Failed too: its last attempt timed out, but the email arrived.
                t.c.status.in_(
                    [
                        emails.DeliveryStatus.QUEUED,
                        emails.DeliveryStatus.SENDING,
                        emails.DeliveryStatus.FAILED,
                    ]
                ),
            )
            .values(status=emails.DeliveryStatus.SENT, sent_at=at, updated_at=at)
            .returning(t.c.registration_id)
        )
        rows = await self.session.execute(statement)
        return [r for (r,) in rows if r is not None]

    async def registration_of(self, message_id: str) -> uuid.UUID | None:
        t = db.email_deliveries
        statement = sa.select(t.c.registration_id).where(t.c.message_id == message_id)
        return (await self.session.execute(statement)).scalar_one_or_none()

    async def get(self, delivery_id: uuid.UUID) -> emails.DeliveryRecord | None:
        t = db.email_deliveries
        row = (
            await self.session.execute(sa.select(*_RECORD_COLUMNS).where(t.c.id == delivery_id))
        ).first()
        return None if row is None else _record(row)

    async def page(
        self,
        *,
        status: emails.DeliveryStatus | None,
        kind: emails.EmailKind | None,
        before: tuple[datetime, uuid.UUID] | None,
        limit: int,
    ) -> list[emails.DeliveryRecord]:
        t = db.email_deliveries
        statement = sa.select(*_RECORD_COLUMNS)
        if status is not None:
            statement = statement.where(t.c.status == status.value)
        if kind is not None:
            statement = statement.where(t.c.kind == kind.value)
        if before is not None:
            # A row comparison: the index on (created_at, id) answers it directly.
            statement = statement.where(sa.tuple_(t.c.created_at, t.c.id) < sa.tuple_(*before))
        statement = statement.order_by(t.c.created_at.desc(), t.c.id.desc()).limit(limit)
        return [_record(row) for row in await self.session.execute(statement)]

    async def requeue(self, delivery_id: uuid.UUID, now: datetime) -> emails.DeliveryRecord | None:
        t = db.email_deliveries
        statement = (
            sa.update(t)
            .where(t.c.id == delivery_id, t.c.status == emails.DeliveryStatus.FAILED)
            .values(
                status=emails.DeliveryStatus.QUEUED,
                attempts=0,
                manual_retries=t.c.manual_retries + 1,
                updated_at=now,
            )
            .returning(*_RECORD_COLUMNS)
        )
        row = (await self.session.execute(statement)).first()
        return None if row is None else _record(row)

    async def count_by_status(self, *, since: datetime) -> emails.DeliveryCounts:
        t = db.email_deliveries
        statement = (
            sa.select(t.c.status, sa.func.count())
            .where(t.c.created_at >= since)
            .group_by(t.c.status)
        )
        rows = await self.session.execute(statement)
        return emails.DeliveryCounts({emails.DeliveryStatus(s): n for s, n in rows})

    async def stranded(
        self, *, created_before: datetime, leased_before: datetime, limit: int
    ) -> list[uuid.UUID]:
        t = db.email_deliveries
        job = _PROCRASTINATE_JOBS
        no_live_job = sa.or_(
            t.c.job_id.is_(None),
            job.c.id.is_(None),
            # An enum in PostgreSQL: compare its text.
            sa.cast(job.c.status, sa.Text).not_in(["todo", "doing"]),
        )
        statement = (
            sa.select(t.c.id)
            .select_from(t.outerjoin(job, job.c.id == t.c.job_id))
            .where(
                t.c.created_at < created_before,
                no_live_job,
                sa.or_(
                    t.c.status == emails.DeliveryStatus.QUEUED,
                    sa.and_(
                        t.c.status == emails.DeliveryStatus.SENDING,
                        t.c.updated_at < leased_before,
                    ),
                ),
            )
            .order_by(t.c.created_at)
            .limit(limit)
            # Two workers sweeping at once take different rows.
            .with_for_update(of=t, skip_locked=True)
        )
        return list((await self.session.execute(statement)).scalars())


_RECORD_COLUMNS = (
    db.email_deliveries.c.id,
    db.email_deliveries.c.kind,
    db.email_deliveries.c.status,
    db.email_deliveries.c.recipient,
    db.email_deliveries.c.suppressed,
    db.email_deliveries.c.registration_id,
    db.email_deliveries.c.attempts,
    db.email_deliveries.c.manual_retries,
    db.email_deliveries.c.last_smtp_code,
    db.email_deliveries.c.last_error,
    db.email_deliveries.c.message_id,
    db.email_deliveries.c.created_at,
    db.email_deliveries.c.updated_at,
    db.email_deliveries.c.sent_at,
    db.email_deliveries.c.user_id,
    db.email_deliveries.c.verification_nonce,
)


def _record(row: Any) -> emails.DeliveryRecord:
    return emails.DeliveryRecord(
        id=row.id,
        kind=emails.EmailKind(row.kind),
        status=emails.DeliveryStatus(row.status),
        recipient=row.recipient,
        suppressed=row.suppressed,
        registration_id=row.registration_id,
        attempts=row.attempts,
        manual_retries=row.manual_retries,
        last_smtp_code=row.last_smtp_code,
        last_error=row.last_error,
        message_id=row.message_id,
        created_at=row.created_at,
        updated_at=row.updated_at,
        sent_at=row.sent_at,
        user_id=row.user_id,
        verification_nonce=row.verification_nonce,
    )


def _window_start(now: datetime, window_seconds: int) -> datetime:
    epoch = now.timestamp()
    return datetime.fromtimestamp(epoch - epoch % window_seconds, tz=now.tzinfo)


def _hashed(key: str) -> str:
    # The tables of limits never hold an address in clear.
    return hashlib.sha256(key.encode()).hexdigest()


_c, _w = db.email_cooldowns, db.email_windows
_ACQUIRE = (
    insert(_c)
    .values(key=db.param(_c.c.key), until=db.param(_c.c.until))
    .on_conflict_do_update(
        index_elements=[_c.c.key],
        set_={"until": db.param(_c.c.until)},
        where=_c.c.until <= sa.bindparam("p_now", type_=_c.c.until.type),
    )
    .returning(_c.c.until)
)
_COOLDOWN_UNTIL = sa.select(_c.c.until).where(_c.c.key == db.param(_c.c.key))
_TAKE = (
    insert(_w)
    .values(key=db.param(_w.c.key), window_start=db.param(_w.c.window_start), count=1)
    .on_conflict_do_update(
        index_elements=[_w.c.key, _w.c.window_start],
        set_={"count": _w.c.count + 1},
        where=_w.c.count < sa.bindparam("p_limit", type_=_w.c.count.type),
    )
    .returning(_w.c.count)
)


class SqlCooldowns:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def acquire(self, key: str, *, seconds: int, now: datetime) -> int | None:
        hashed = _hashed(key)
        until = now + timedelta(seconds=seconds)
        parameters = {"p_key": hashed, "p_until": until, "p_now": now}
        if (await self.session.execute(_ACQUIRE, parameters)).first() is not None:
            return None
        current: datetime = (
            await self.session.execute(_COOLDOWN_UNTIL, {"p_key": hashed})
        ).scalar_one()
        # Clamped: a concurrent caller may have read its clock a moment earlier.
        return min(seconds, max(1, math.ceil((current - now).total_seconds())))

    async def take(self, key: str, *, limit: int, window_seconds: int, now: datetime) -> int | None:
        start = _window_start(now, window_seconds)
        parameters = {"p_key": _hashed(key), "p_window_start": start, "p_limit": limit}
        if (await self.session.execute(_TAKE, parameters)).first() is not None:
            return None
        ends = start + timedelta(seconds=window_seconds)
        return max(1, math.ceil((ends - now).total_seconds()))

    async def give_back(self, key: str, *, window_seconds: int, now: datetime) -> None:
        t = db.email_windows
        await self.session.execute(
            sa.update(t)
            .where(
                t.c.key == _hashed(key),
                t.c.window_start == _window_start(now, window_seconds),
                t.c.count > 0,
            )
            .values(count=t.c.count - 1)
        )

    async def prune(self, now: datetime) -> int:
        cooldowns, windows = db.email_cooldowns, db.email_windows
        over = await self.session.execute(sa.delete(cooldowns).where(cooldowns.c.until <= now))
        # Windows are at most an hour long: two hours old is surely over.
        old = await self.session.execute(
            sa.delete(windows).where(windows.c.window_start < now - timedelta(hours=2))
        )
        return int(over.rowcount) + int(old.rowcount)  # type: ignore[attr-defined]
