"""GraphQL types shared by several mutations: the account and the expected errors."""

from __future__ import annotations

import strawberry

from domain import errors, users


@strawberry.type
class User:
    id: strawberry.ID
    email: str
    email_verified: bool
    locale: str = strawberry.field(description="The language of the account's emails.")

    @classmethod
    def from_domain(cls, user: users.User) -> User:
        return cls(
            id=strawberry.ID(str(user.id)),
            email=user.email,
            email_verified=user.email_verified,
            locale=user.locale,
        )


@strawberry.type(description="One input field and what is wrong with it.")
class FieldError:
    field: str
    message: str


@strawberry.type(description="The input was rejected; nothing was changed.")
class InvalidInput:
    message: str
    fields: list[FieldError]

    @classmethod
    def from_error(cls, error: errors.InvalidInput) -> InvalidInput:
        return cls(
            message=error.message,
            fields=[FieldError(field=p.field, message=p.message) for p in error.fields],
        )


@strawberry.type(description="The link was altered, already used, or replaced by a newer one.")
class InvalidToken:
    message: str


@strawberry.type(description="The link is too old; ask for a new one.")
class ExpiredToken:
    message: str


@strawberry.type(description="Too many requests: try again after retryAfterSeconds.")
class RateLimited:
    message: str
    retry_after_seconds: int

    @classmethod
    def from_error(cls, error: errors.RateLimited) -> RateLimited:
        return cls(message=error.message, retry_after_seconds=error.retry_after_seconds)


@strawberry.type(description="The rules a new password must follow, for sign-up forms.")
class PasswordPolicy:
    min_length: int
    max_length: int


@strawberry.type(description="The address or the password is wrong (the same answer for both).")
class InvalidCredentials:
    message: str


@strawberry.type(
    description="The password is right but the address is not confirmed yet; "
    "resendVerificationEmail sends a new link."
)
class EmailNotVerified:
    message: str


@strawberry.type(description="This needs a session: send `Authorization: Bearer <accessToken>`.")
class NotSignedIn:
    message: str


@strawberry.type(description="Another account already uses this address.")
class AddressUnavailable:
    message: str


def token_error(error: errors.InvalidToken | errors.ExpiredToken) -> InvalidToken | ExpiredToken:
    if isinstance(error, errors.ExpiredToken):
        return ExpiredToken(message=error.message)
    return InvalidToken(message=error.message)
