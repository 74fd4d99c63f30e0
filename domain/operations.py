"""Use cases for operators: read the delivery record, retry a failed email, count.

Each takes the caller's credential first and raises ``NotAuthorized`` before
touching anything unless it is one of the configured admin API keys, so a
caller without one learns nothing, not even whether a delivery exists.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from domain import emails, errors, handlers, ports

MAX_PAGE_SIZE = 100


@dataclass(frozen=True)
class AdminKeys:
    """The admin API keys, kept as SHA-256 digests and compared in constant time."""

    digests: tuple[bytes, ...] = ()

    @classmethod
    def of(cls, keys: Iterable[str]) -> AdminKeys:
        return cls(tuple(hashlib.sha256(k.encode()).digest() for k in keys))

    def admit(self, credential: str | None) -> None:
        # Digests first: equal lengths, so the comparison's time says nothing
        # about the key; every key is compared, so neither does which matched.
        candidate = hashlib.sha256((credential or "").encode()).digest()
        matched = False
        for digest in self.digests:
            matched |= hmac.compare_digest(digest, candidate)
        if not matched or not credential:
            raise errors.NotAuthorized()


@dataclass(frozen=True)
class Operations:
    uow: ports.UnitOfWorkFactory
    clock: ports.Clock
    admin_keys: AdminKeys


@dataclass(frozen=True)
class ListDeliveries:
    status: emails.DeliveryStatus | None = None
    kind: emails.EmailKind | None = None
    first: int = 20
    after: str | None = None


@dataclass(frozen=True)
class DeliveryPage:
    deliveries: list[emails.DeliveryRecord]
    has_next_page: bool

    @property
    def end_cursor(self) -> str | None:
        return cursor_of(self.deliveries[-1]) if self.deliveries else None


@dataclass(frozen=True)
class DeliveryStats:
    last_hour: emails.DeliveryCounts
    last_day: emails.DeliveryCounts


def cursor_of(record: emails.DeliveryRecord) -> str:
    """An opaque position in the newest-first listing, just after ``record``."""
    raw = f"{record.created_at.isoformat()}|{record.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _position(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created_at, _, delivery_id = raw.partition("|")
        position = datetime.fromisoformat(created_at), uuid.UUID(delivery_id)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise errors.InvalidInput(
            [errors.FieldProblem("after", "not a cursor from this listing")],
            "Pass the endCursor of a previous page as after.",
        ) from None
    if position[0].tzinfo is None:
        raise errors.InvalidInput(
            [errors.FieldProblem("after", "not a cursor from this listing")],
            "Pass the endCursor of a previous page as after.",
        )
    return position


async def list_deliveries(
    credential: str | None, query: ListDeliveries, operations: Operations
) -> DeliveryPage:
    """One page of the delivery record, newest first, optionally by status and kind."""
    operations.admin_keys.admit(credential)
    if not 1 <= query.first <= MAX_PAGE_SIZE:
        raise errors.InvalidInput(
            [errors.FieldProblem("first", f"must be between 1 and {MAX_PAGE_SIZE}")],
            f"Ask for between 1 and {MAX_PAGE_SIZE} deliveries at a time.",
        )
    before = None if query.after is None else _position(query.after)
    async with operations.uow() as uow:
        found = await uow.deliveries.page(
            status=query.status, kind=query.kind, before=before, limit=query.first + 1
        )
    return DeliveryPage(found[: query.first], has_next_page=len(found) > query.first)


def _delivery_id(raw: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(raw)
    except ValueError:
        return None


async def get_delivery(
    credential: str | None, delivery_id: str, operations: Operations
) -> emails.DeliveryRecord | None:
    """The delivery with this id; None for an unknown or malformed id."""
    operations.admin_keys.admit(credential)
    found = _delivery_id(delivery_id)
    if found is None:
        return None
    async with operations.uow() as uow:
        return await uow.deliveries.get(found)


async def retry_delivery(
    credential: str | None, delivery_id: str, operations: Operations
) -> emails.DeliveryRecord:
    """Queue a failed delivery again, with a fresh set of attempts.

    For after the cause is fixed (the mail server's credentials, a full
    mailbox). The registration it belongs to shows the email queued again, so
    a client still watching sees the retry through to ``EmailSent``.
    """
    operations.admin_keys.admit(credential)
    found = _delivery_id(delivery_id)
    if found is None:
        raise errors.DeliveryNotFound()
    now = operations.clock.now()
    async with operations.uow() as uow:
        current = await uow.deliveries.get(found)
        if current is None:
            raise errors.DeliveryNotFound()
        if await _superseded(uow, current):
            raise errors.DeliveryNotRetryable(
                current.status.value,
                "This verification email was superseded: a newer link was sent or the"
                " address was verified, so its link no longer works. The account's"
                " owner can ask for a new one with resendVerificationEmail.",
            )
        record = await uow.deliveries.requeue(found, now)
        if record is None:  # it is no longer failed (a concurrent retry, say)
            current = await uow.deliveries.get(found)
            if current is None:
                raise errors.DeliveryNotFound()
            raise errors.DeliveryNotRetryable(current.status.value)
        # When the queue is unavailable the delivery stays queued without a
        # job, and the worker's sweep gives it one.
        await uow.outbox.defer(record.id)
        await handlers.record_queued(uow, record.registration_id, now)
        await uow.commit()
    return record


async def _superseded(uow: ports.UnitOfWork, record: emails.DeliveryRecord) -> bool:
    """A verification email whose link can no longer work: sending it again
    would mail a dead link."""
    if record.kind is not emails.EmailKind.VERIFY_EMAIL or record.user_id is None:
        return False
    user = await uow.users.get(record.user_id)
    return (
        user is None or user.email_verified or user.verification_nonce != record.verification_nonce
    )


async def delivery_stats(credential: str | None, operations: Operations) -> DeliveryStats:
    """Deliveries created in the last hour and the last day, by status."""
    operations.admin_keys.admit(credential)
    now = operations.clock.now()
    async with operations.uow() as uow:
        hour = await uow.deliveries.count_by_status(since=now - timedelta(hours=1))
        day = await uow.deliveries.count_by_status(since=now - timedelta(days=1))
    return DeliveryStats(last_hour=hour, last_day=day)
