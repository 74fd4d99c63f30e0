"""Signed-in sessions: an opaque bearer token for the client, its digest for us."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta


def new_token() -> str:
    """256 random bits: guessing one is hopeless, so its plain digest is enough."""
    return secrets.token_urlsafe(32)


def digest(token: str) -> str:
    """What the sessions table keeps: a stolen table holds no usable token."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Session:
    id: uuid.UUID
    user_id: uuid.UUID
    token_digest: str
    created_at: datetime
    expires_at: datetime

    @classmethod
    def start(cls, user_id: uuid.UUID, token: str, now: datetime, max_age_seconds: int) -> Session:
        return cls(
            id=uuid.uuid4(),
            user_id=user_id,
            token_digest=digest(token),
            created_at=now,
            expires_at=now + timedelta(seconds=max_age_seconds),
        )
