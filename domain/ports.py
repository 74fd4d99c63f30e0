"""The ports that use cases need, as protocols; ``infra`` implements them and
``tests/unit`` fakes them."""

from __future__ import annotations

import uuid
from collections.abc import AsyncGenerator, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Any, Protocol

from domain import emails, progress, sessions, users


class UserRepository(Protocol):
    async def add(self, user: users.User) -> bool:
        """Insert ``user``; False (and no change) when its address is already taken,
        compared case-insensitively."""

    async def get_by_email(self, email: str) -> users.User | None:
        """The account with this address, compared case-insensitively."""

    async def bump_verification_nonce(self, user_id: uuid.UUID) -> int:
        """Invalidate every verification link sent so far; return the new nonce."""

    async def mark_verified(
        self, user_id: uuid.UUID, email: str, nonce: int, at: datetime
    ) -> users.User | None:
        """Atomically verify the address if it is still unverified and the nonce is
        the newest; None when the token was used, replaced or the address changed."""

    async def get(self, user_id: uuid.UUID) -> users.User | None: ...

    async def remember_registration(self, user_id: uuid.UUID, password_hash: str) -> None:
        """A repeated registration of the account's address, with its
        password's hash: an unverified account takes it as its password,
        contested; a verified one keeps it as ``registration_attempt_hash``."""

    async def contest_password(self, user_id: uuid.UUID) -> None:
        """Mark the password as possibly chosen by someone else (``User.password_contested``)."""

    async def replace_password(
        self, user_id: uuid.UUID, *, current_hash: str, new_hash: str
    ) -> bool:
        """Set a new password hash only if the stored one is still ``current_hash``
        (of two concurrent changes, one wins); clears ``password_contested``."""

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
        """Move the account to ``new`` (verified at ``at``; its nonce bumped, so
        older links die) if its address, nonce and password hash are still
        these; None otherwise. An account nobody verified that holds ``new`` is
        removed (the caller proved it owns the mailbox); raises
        ``errors.AddressUnavailable`` when a verified account has ``new``."""


class SessionRepository(Protocol):
    async def add(self, session: sessions.Session, *, password_hash: str) -> bool:
        """Start the session only if the account's password hash is still
        ``password_hash``; False when it changed (a reset won the race)."""

    async def user_of(self, token_digest: str, now: datetime) -> users.User | None:
        """The account of an unexpired session, noting its use; None otherwise."""

    async def revoke(self, token_digest: str) -> bool:
        """End one session; False when there was none."""

    async def revoke_all(self, user_id: uuid.UUID) -> int:
        """End every session of the account; how many there were."""

    async def prune(self, now: datetime) -> int:
        """Forget sessions that expired; how many."""


class DeliveryRepository(Protocol):
    async def claim(
        self, delivery_id: uuid.UUID, now: datetime, *, lease_seconds: float
    ) -> emails.Delivery | None:
        """Take a delivery that still has to be sent: count an attempt and mark it
        ``sending`` until ``now + lease``. None when it was sent, failed for good
        or does not exist; ``errors.DeliveryLeased`` while another attempt holds
        an unexpired lease on it."""

    # The outcome of an attempt: each applies only to a delivery still
    # ``sending``, and says whether it did. False means the outcome is known
    # already: this write was repeated, or the link in the email was used
    # before the attempt could record its own success (see ``received``).

    async def mark_sent(self, delivery_id: uuid.UUID, now: datetime) -> bool: ...

    async def mark_retrying(
        self, delivery_id: uuid.UUID, now: datetime, code: int | None, reason: str
    ) -> bool: ...

    async def mark_failed(
        self, delivery_id: uuid.UUID, now: datetime, code: int | None, reason: str
    ) -> bool: ...

    async def mark_suppressed(self, delivery_id: uuid.UUID, now: datetime) -> bool: ...

    async def received(self, user_id: uuid.UUID, nonce: int, at: datetime) -> list[uuid.UUID]:
        """Mark ``sent`` the verification emails that carried this nonce and are
        not recorded as sent yet (their link was used, so they arrived);
        returns the registrations they belong to."""

    async def registration_of(self, message_id: str) -> uuid.UUID | None:
        """The registration a sent message belongs to, by its Message-ID."""

    async def stranded(
        self, *, created_before: datetime, leased_before: datetime, limit: int
    ) -> list[uuid.UUID]:
        """Deliveries still to send that no job will send: never given one (queue
        down or disabled), or whose job ended without finishing them (its
        database retries ran out, it was cancelled), including attempts whose
        lease began before ``leased_before``."""

    # What operators read and do (see ``domain.operations``).

    async def get(self, delivery_id: uuid.UUID) -> emails.DeliveryRecord | None: ...

    async def page(
        self,
        *,
        status: emails.DeliveryStatus | None,
        kind: emails.EmailKind | None,
        before: tuple[datetime, uuid.UUID] | None,
        limit: int,
    ) -> list[emails.DeliveryRecord]:
        """Newest first (by creation, then id), only those strictly older than
        ``before`` when given, at most ``limit``."""

    async def requeue(self, delivery_id: uuid.UUID, now: datetime) -> emails.DeliveryRecord | None:
        """Put a ``failed`` delivery back to ``queued`` with a fresh count of
        attempts; None (and no change) when it is not failed."""

    async def count_by_status(self, *, since: datetime) -> emails.DeliveryCounts:
        """Deliveries created at or after ``since``, by status."""


class EmailOutbox(Protocol):
    async def enqueue(self, request: emails.EmailRequest) -> None:
        """Record the delivery and queue its job in the current transaction. If the
        queue is unavailable the delivery is still recorded, without a job."""

    async def defer(self, delivery_id: uuid.UUID) -> bool:
        """Queue the job of a recorded delivery; False when the queue is unavailable."""


class RegistrationLog(Protocol):
    """The steps of each registration, written in the transaction of the change
    they report and announced to watchers when it commits."""

    async def record(
        self,
        registration_id: uuid.UUID,
        step: progress.Step,
        at: datetime,
        *,
        will_retry: bool = False,
        retry_at: datetime | None = None,
        reason: str | None = None,
    ) -> None: ...

    async def record_verified(self, user_id: uuid.UUID, nonce: int, at: datetime) -> None:
        """``EMAIL_VERIFIED`` for the registration whose email carried the link
        with this nonce, and no other: whoever else registered the address
        does not learn when its owner confirmed it."""


class RegistrationFeed(Protocol):
    def follow(
        self, registration_id: uuid.UUID, *, after: int | None = None
    ) -> AsyncGenerator[progress.RegistrationStep, None]:
        """Every step of the registration (after the step ``after``, when
        given): those recorded so far, in order, then each new one as it
        commits, ending after a final step (``step.final``). Never misses a
        step, never repeats one."""


class Cooldowns(Protocol):
    async def acquire(self, key: str, *, seconds: int, now: datetime) -> int | None:
        """Start a cooldown on ``key``; None when it was free, else the whole
        seconds left to wait. Holds across processes."""

    async def take(self, key: str, *, limit: int, window_seconds: int, now: datetime) -> int | None:
        """Count one against ``key`` in the current window of ``window_seconds``;
        None when that was within ``limit``, else the whole seconds until the
        window ends. Holds across processes."""

    async def give_back(self, key: str, *, window_seconds: int, now: datetime) -> None:
        """Uncount one ``take`` of ``key`` in the current window (never below zero)."""

    async def prune(self, now: datetime) -> int:
        """Forget cooldowns and windows that are over; returns how many."""


class UnitOfWork(Protocol):
    """One transaction: nothing is kept unless ``commit`` is called."""

    @property
    def users(self) -> UserRepository: ...

    @property
    def deliveries(self) -> DeliveryRepository: ...

    @property
    def sessions(self) -> SessionRepository: ...

    @property
    def outbox(self) -> EmailOutbox: ...

    @property
    def cooldowns(self) -> Cooldowns: ...

    @property
    def progress(self) -> RegistrationLog: ...

    async def commit(self) -> None: ...

    async def rollback(self) -> None: ...


UnitOfWorkFactory = Callable[[], AbstractAsyncContextManager[UnitOfWork]]


class PasswordHasher(Protocol):
    async def hash(self, password: str, *, like: str | None = None) -> str:
        """Hash off the event loop; ``errors.RateLimited`` when too many wait
        already. With ``like``, use its salt and parameters, so that ``check``
        can compare against both in one computation."""

    async def check(
        self, password_hash: str | None, password: str, *, also: str | None = None
    ) -> str | None:
        """Which of ``password_hash`` ("stored") or ``also`` ("also", made with
        ``hash(like=password_hash)``) the password matches, if either, in one
        computation; with None, the same work against a dummy, and None."""

    def needs_rehash(self, password_hash: str) -> bool:
        """Whether the hash was made with other parameters than today's."""


class AddressValidator(Protocol):
    def normalize(self, address: str) -> str:
        """The canonical form of an address; raises ``errors.InvalidAddress``."""


class TokenSigner(Protocol):
    def sign(self, purpose: str, payload: Mapping[str, Any]) -> str: ...

    def unsign(self, purpose: str, token: str, *, max_age_seconds: int) -> dict[str, Any]:
        """The payload of a token signed for ``purpose``; raises ``errors.ExpiredToken``
        or ``errors.InvalidToken``."""


class EmailRenderer(Protocol):
    def render(
        self, kind: emails.EmailKind, context: Mapping[str, Any], locale: str = "en"
    ) -> emails.RenderedEmail:
        """The email in ``locale`` when a translation exists, else in English."""


class Mailer(Protocol):
    async def send(self, email: emails.OutgoingEmail) -> None:
        """Hand the message to the mail server; raises ``errors.DeliveryFailure``."""

    async def rehearse(self) -> None:
        """Hold the same conversation as ``send`` up to the message, then leave;
        raises ``errors.DeliveryFailure`` as ``send`` would."""


class Clock(Protocol):
    def now(self) -> datetime: ...
