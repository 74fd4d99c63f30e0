"""What a client watching a registration sees: the steps of its email, in order."""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass
from datetime import datetime


class Step(enum.StrEnum):
    EMAIL_QUEUED = "email_queued"
    EMAIL_SENT = "email_sent"
    EMAIL_FAILED = "email_failed"
    EMAIL_VERIFIED = "email_verified"


@dataclass(frozen=True)
class RegistrationStep:
    """One recorded step; ``id`` orders the steps of a registration and lets a
    watcher that reconnects or subscribes late know what it has already seen."""

    id: int
    registration_id: uuid.UUID
    step: Step
    at: datetime
    will_retry: bool = False
    retry_at: datetime | None = None
    reason: str | None = None

    @property
    def final(self) -> bool:
        return self.step is Step.EMAIL_VERIFIED
