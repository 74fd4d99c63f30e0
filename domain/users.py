"""The user account and the rules on its credentials."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from domain import errors

PASSWORD_MIN_LENGTH = 8
PASSWORD_MAX_LENGTH = 256


@dataclass(frozen=True)
class User:
    id: uuid.UUID
    email: str
    password_hash: str
    created_at: datetime
    email_verified_at: datetime | None = None
    # Bumped by every new verification email; a link carries the nonce it was
    # minted with, so only the newest link can verify the address.
    verification_nonce: int = 1

    @property
    def email_verified(self) -> bool:
        return self.email_verified_at is not None

    @classmethod
    def new(
        cls,
        *,
        email: str,
        password_hash: str,
        now: datetime,
    ) -> User:
        return cls(id=uuid.uuid4(), email=email, password_hash=password_hash, created_at=now)


def password_problems(password: str) -> list[errors.FieldProblem]:
    """What is wrong with a new password, as field errors (empty when it is acceptable)."""
    if len(password) < PASSWORD_MIN_LENGTH:
        message = f"Use at least {PASSWORD_MIN_LENGTH} characters."
    elif len(password) > PASSWORD_MAX_LENGTH:
        message = f"Use at most {PASSWORD_MAX_LENGTH} characters."
    elif not password.strip():
        message = "The password cannot be only spaces."
    else:
        return []
    return [errors.FieldProblem(field="password", message=message)]
