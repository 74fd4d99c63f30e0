"""The user account and the rules on its credentials."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime

from domain import errors

PASSWORD_MIN_LENGTH = 8
PASSWORD_MAX_LENGTH = 256
DEFAULT_LOCALE = "en"
# A language tag such as "de" or "pt-BR" (BCP 47's common shapes).
_LOCALE = re.compile(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8}){0,3}")


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
    # The language its emails are written in, when a translation exists.
    locale: str = DEFAULT_LOCALE
    # Someone else registered the address too before it was verified, so the
    # password may be theirs: verifying the address then asks the owner to
    # choose a password through a reset link instead of trusting it.
    password_contested: bool = False
    # The password of the latest registration of this address after it was
    # verified, hashed with the account's own salt: signIn with it answers
    # EmailNotVerified, as it would for the new account such a registration
    # makes of an unknown address, so signing in cannot tell the two apart.
    registration_attempt_hash: str | None = None

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
        locale: str = DEFAULT_LOCALE,
    ) -> User:
        return cls(
            id=uuid.uuid4(),
            email=email,
            password_hash=password_hash,
            created_at=now,
            locale=locale,
        )


def fingerprint(password_hash: str) -> str:
    """A short digest of a password hash: a reset link carries it, so the link
    dies with the password it was issued against (after one use, or any change)."""
    digest = hashlib.sha256(password_hash.encode()).digest()[:16]
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def unusable_password() -> str:
    """A stored password no password matches (not an argon2 hash at all)."""
    return "!unusable:" + secrets.token_urlsafe(16)


def locale_problems(locale: str) -> list[errors.FieldProblem]:
    if _LOCALE.fullmatch(locale):
        return []
    return [errors.FieldProblem(field="locale", message="Use a language tag such as en or de-AT.")]


def mask(address: str) -> str:
    """An address as a notice may show it to someone else: ``a***@example.com``."""
    local, _, domain = address.rpartition("@")
    return f"{local[:1]}***@{domain}"


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
