"""The errors that use cases raise; the API maps each to a GraphQL union member."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


class DomainError(Exception):
    """The request could not be carried out."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.__doc__ or "")

    @property
    def message(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True)
class FieldProblem:
    field: str
    message: str


class InvalidInput(DomainError):
    """The input is not valid."""

    def __init__(self, fields: list[FieldProblem], message: str | None = None) -> None:
        super().__init__(message)
        self.fields = fields


class InvalidAddress(DomainError):
    """This is not a valid email address."""


class InvalidToken(DomainError):
    """This link is not valid: it was changed, already used, or replaced by a newer one."""


class ExpiredToken(DomainError):
    """This link has expired. Ask for a new one."""


class InvalidCredentials(DomainError):
    """The address or the password is wrong."""


class EmailNotVerified(DomainError):
    """Confirm this address first: open the link in the confirmation email, or ask
    for a new one with resendVerificationEmail."""


class NotSignedIn(DomainError):
    """This needs a session: sign in and send its accessToken as "Authorization: Bearer <token>"."""


class AddressUnavailable(DomainError):
    """This address is already used by another account."""


class RateLimited(DomainError):
    """Too many requests: wait before trying again."""

    def __init__(self, retry_after_seconds: int, message: str | None = None) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds


class DeliveryFailure(DomainError):
    """The mail server did not accept the message."""

    def __init__(self, *, transient: bool, code: int | None, reason: str) -> None:
        super().__init__(f"{code or 'no code'}: {reason}")
        self.transient = transient
        self.code = code
        self.reason = reason


class EmailDeliveryError(DomainError):
    """The email could not be delivered this time; the job will retry it."""

    def __init__(self, failure: DeliveryFailure, retry_at: datetime) -> None:
        super().__init__(f"transient delivery failure: {failure.message}")
        self.failure = failure
        self.retry_at = retry_at


class WatchOverflow(DomainError):
    """This subscription fell too far behind and was closed; subscribe again to
    resume (the steps so far are replayed)."""


class DeliveryLeased(DomainError):
    """Another attempt holds this delivery; it may be tried again when its lease ends."""

    def __init__(self, until: datetime) -> None:
        super().__init__()
        self.until = until


class NotAuthorized(DomainError):
    """This needs an admin API key: send one as "Authorization: Bearer <key>"."""


class DeliveryNotFound(DomainError):
    """There is no email delivery with this id."""


class DeliveryNotRetryable(DomainError):
    """Only a delivery that failed for good can be retried; this one has not."""

    def __init__(self, status: str, message: str | None = None) -> None:
        super().__init__(message or f"Only a failed delivery can be retried; this one is {status}.")
        self.status = status
