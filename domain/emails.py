"""Emails Herald means to send, and the record of each delivery."""

from __future__ import annotations

import enum
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime


class EmailKind(enum.StrEnum):
    VERIFY_EMAIL = "verify_email"
    ACCOUNT_EXISTS = "account_exists"
    WELCOME = "welcome"
    PASSWORD_RESET = "password_reset"  # noqa: S105
    PASSWORD_CHANGED = "password_changed"  # noqa: S105
    EMAIL_CHANGE_CONFIRM = "email_change_confirm"
    EMAIL_CHANGE_NOTICE = "email_change_notice"


class DeliveryStatus(enum.StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    # Nothing was sent on purpose (see ``EmailRequest.suppressed``).
    SUPPRESSED = "suppressed"


@dataclass(frozen=True)
class EmailRequest:
    """An email to queue, recorded in the same transaction as the change that asks for it.

    A *suppressed* request goes through the same queue and job but sends
    nothing: it stands for an email that must not go out (the address is in
    its cooldown, or has no account), so that what a caller can watch of a
    registration looks the same whether or not the address has an account.
    """

    kind: EmailKind
    user_id: uuid.UUID | None
    # The registration it is a step of, for emails a sign-up screen watches.
    registration_id: uuid.UUID | None = None
    verification_nonce: int | None = None
    suppressed: bool = False
    # Where it goes when not to the account's current address (a new address
    # to confirm).
    recipient: str | None = None
    # What its link must say, recorded with the request and signed only when
    # the email is sent: no token is ever stored or put in a job's arguments.
    claims: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Delivery:
    """One email Herald means to send, as the worker sees it when it picks it up."""

    id: uuid.UUID
    kind: EmailKind
    user_id: uuid.UUID | None
    registration_id: uuid.UUID | None
    recipient: str | None
    suppressed: bool
    attempts: int
    message_id: str
    verification_nonce: int | None
    claims: Mapping[str, str] = field(default_factory=dict)
    locale: str = "en"


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    text: str
    html: str


@dataclass(frozen=True)
class OutgoingEmail:
    recipient: str
    message_id: str
    content: RenderedEmail


@dataclass(frozen=True)
class DeliveryRecord:
    """A delivery as an operator sees it: what it is, where it stands, what went wrong."""

    id: uuid.UUID
    kind: EmailKind
    status: DeliveryStatus
    recipient: str | None
    suppressed: bool
    registration_id: uuid.UUID | None
    # Attempts since the delivery was last queued (by Herald or by an operator).
    attempts: int
    manual_retries: int
    last_smtp_code: int | None
    last_error: str | None
    message_id: str
    created_at: datetime
    updated_at: datetime
    sent_at: datetime | None
    # For a verification email: the account and the link's nonce, which must
    # still be the account's for the link to work.
    user_id: uuid.UUID | None = None
    verification_nonce: int | None = None


@dataclass(frozen=True)
class DeliveryCounts:
    """How many deliveries created in a window stand in each status."""

    by_status: Mapping[DeliveryStatus, int]

    def __getitem__(self, status: DeliveryStatus) -> int:
        return self.by_status.get(status, 0)

    @property
    def total(self) -> int:
        return sum(self.by_status.values())
