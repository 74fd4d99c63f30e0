"""GraphQL types shared by several mutations: the account and the expected errors."""

from __future__ import annotations

import strawberry

from domain import errors, users


@strawberry.type
class User:
    id: strawberry.ID
    email: str
    email_verified: bool

    @classmethod
    def from_domain(cls, user: users.User) -> User:
        return cls(
            id=strawberry.ID(str(user.id)), email=user.email, email_verified=user.email_verified
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


@strawberry.type(description="The link is too old; ask for a new one with resendVerificationEmail.")
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
