"""What happened to an account, in the past tense.

Handlers that must be atomic with the change (queueing an email) run inside
the same transaction, before commit: see ``domain.handlers``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class UserRegistered:
    user_id: uuid.UUID
    registration_id: uuid.UUID
    verification_nonce: int


@dataclass(frozen=True)
class RegistrationRepeated:
    """Someone registered an address that already has an account.

    The caller sees the same answer as for a new address; the owner gets an
    email instead, so only the owner learns that the account exists.
    """

    user_id: uuid.UUID
    registration_id: uuid.UUID
    already_verified: bool
    verification_nonce: int
    # Within the address's cooldown: nothing is sent, but the registration's
    # watchers see the same steps as for a new account.
    suppressed: bool = False


@dataclass(frozen=True)
class VerificationEmailRequested:
    """A new link was asked for; ``user_id`` is None when the address has no account."""

    user_id: uuid.UUID | None
    registration_id: uuid.UUID
    already_verified: bool
    verification_nonce: int | None
    suppressed: bool = False


@dataclass(frozen=True)
class EmailVerified:
    user_id: uuid.UUID
    at: datetime
    # The nonce of the link that was used: it names the one email, and so the
    # one registration, that this verification answers.
    verification_nonce: int


@dataclass(frozen=True)
class PasswordResetRequested:
    """A reset link was asked for; ``user_id`` is None when the address has no
    account (nothing is sent, but the request costs what a real one does)."""

    user_id: uuid.UUID | None
    # Of the password hash the link may replace: see ``users.fingerprint``.
    fingerprint: str | None
    # The account's address when asked: the link dies if the account moves.
    email: str | None = None


@dataclass(frozen=True)
class PasswordChanged:
    user_id: uuid.UUID


@dataclass(frozen=True)
class EmailChangeRequested:
    """A signed-in owner asked to move the account to ``new_email``.

    The new address gets the confirmation link, unless another account has it
    (the request is answered the same, so it reveals nothing); the current
    address gets a notice either way.
    """

    user_id: uuid.UUID
    current_email: str
    new_email: str
    new_email_free: bool
    # The account's state when asked; the link dies with any change to it (a
    # new address, a new password), so it cannot be replayed after A→B→A or
    # survive a reset.
    verification_nonce: int = 0
    fingerprint: str = ""


Event = (
    UserRegistered
    | RegistrationRepeated
    | VerificationEmailRequested
    | EmailVerified
    | PasswordResetRequested
    | PasswordChanged
    | EmailChangeRequested
)
