"""The ports that use cases need, as protocols; ``infra`` implements them and
``tests/unit`` fakes them."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Any, Protocol

from domain import emails, users


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

    async def unverified_without_verification_email(
        self, *, created_before: datetime, limit: int
    ) -> list[users.User]:
        """Unverified accounts for which no verification email was ever recorded."""


class DeliveryRepository(Protocol):
    async def claim(self, delivery_id: uuid.UUID, now: datetime) -> emails.Delivery | None:
        """Lock a delivery that still has to be sent, count an attempt and mark it
        ``sending``; None when it was already sent, failed for good or does not exist."""

    async def mark_sent(self, delivery_id: uuid.UUID, now: datetime) -> None: ...

    async def mark_retrying(
        self, delivery_id: uuid.UUID, now: datetime, code: int | None, reason: str
    ) -> None: ...

    async def mark_failed(
        self, delivery_id: uuid.UUID, now: datetime, code: int | None, reason: str
    ) -> None: ...


class EmailOutbox(Protocol):
    async def enqueue(self, request: emails.EmailRequest) -> None:
        """Record the delivery and queue its job in the current transaction."""


class Cooldowns(Protocol):
    async def acquire(self, key: str, *, seconds: int, now: datetime) -> int | None:
        """Start a cooldown on ``key``; None when it was free, else the whole
        seconds left to wait. Holds across processes."""


class UnitOfWork(Protocol):
    """One transaction: nothing is kept unless ``commit`` is called."""

    @property
    def users(self) -> UserRepository: ...

    @property
    def deliveries(self) -> DeliveryRepository: ...

    @property
    def outbox(self) -> EmailOutbox: ...

    @property
    def cooldowns(self) -> Cooldowns: ...

    async def commit(self) -> None: ...

    async def rollback(self) -> None: ...


UnitOfWorkFactory = Callable[[], AbstractAsyncContextManager[UnitOfWork]]


class PasswordHasher(Protocol):
    async def hash(self, password: str) -> str:
        """Hash off the event loop."""


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
        self, kind: emails.EmailKind, context: Mapping[str, Any]
    ) -> emails.RenderedEmail: ...


class Mailer(Protocol):
    async def send(self, email: emails.OutgoingEmail) -> None:
        """Hand the message to the mail server; raises ``errors.DeliveryFailure``."""


class Clock(Protocol):
    def now(self) -> datetime: ...
