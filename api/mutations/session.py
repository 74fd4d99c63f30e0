"""``signIn`` and ``signOut``: sessions as opaque bearer tokens."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import strawberry
from strawberry.types import Info

from api.context import Context
from api.types import EmailNotVerified, InvalidCredentials, NotSignedIn, RateLimited, User
from domain import authentication, errors


@strawberry.type(
    description="Signed in: send `Authorization: Bearer <accessToken>` with later requests "
    "(on a WebSocket, as `Authorization` in the connection_init payload)."
)
class SignInSuccess:
    access_token: str
    expires_at: datetime
    user: User


SignInResult = Annotated[
    SignInSuccess | InvalidCredentials | EmailNotVerified | RateLimited,
    strawberry.union("SignInResult"),
]


@strawberry.type(description="The session was ended; its token no longer works.")
class SignOutSuccess:
    message: str


SignOutResult = Annotated[SignOutSuccess | NotSignedIn, strawberry.union("SignOutResult")]


async def sign_in(info: Info[Context, None], email: str, password: str) -> SignInResult:
    command = authentication.SignIn(email=email, password=password, client=info.context.client)
    try:
        signed_in = await authentication.sign_in(command, info.context.accounts)
    except errors.InvalidCredentials as error:
        return InvalidCredentials(message=error.message)
    except errors.EmailNotVerified as error:
        return EmailNotVerified(message=error.message)
    except errors.RateLimited as error:
        return RateLimited.from_error(error)
    return SignInSuccess(
        access_token=signed_in.access_token,
        expires_at=signed_in.expires_at,
        user=User.from_domain(signed_in.user),
    )


async def sign_out(info: Info[Context, None]) -> SignOutResult:
    try:
        await authentication.sign_out(info.context.bearer, info.context.accounts)
    except errors.NotSignedIn as error:
        return NotSignedIn(message=error.message)
    return SignOutSuccess(message="Signed out.")


async def me(info: Info[Context, None]) -> User | None:
    user = await authentication.current_user(info.context.bearer, info.context.accounts)
    return None if user is None else User.from_domain(user)
