"""``register``: create an account and queue its verification email."""

from __future__ import annotations

from typing import Annotated

import strawberry
from strawberry.types import Info

from api.context import Context
from api.types import InvalidInput, RateLimited
from domain import accounts, errors


@strawberry.input
class RegisterInput:
    email: str
    password: str
    locale: str | None = strawberry.field(
        default=None,
        description="The language of the account's emails, such as de or en-GB (default en).",
    )


@strawberry.type(
    description=(
        "The registration was accepted. The same answer is given whether or not the "
        "address already had an account; its owner learns which by email."
    )
)
class RegisterSuccess:
    registration_token: str


RegisterResult = Annotated[
    RegisterSuccess | InvalidInput | RateLimited, strawberry.union("RegisterResult")
]


async def register(info: Info[Context, None], input: RegisterInput) -> RegisterResult:
    command = accounts.Register(email=input.email, password=input.password, locale=input.locale)
    try:
        started = await accounts.register(command, info.context.accounts)
    except errors.InvalidInput as error:
        return InvalidInput.from_error(error)
    except errors.RateLimited as error:
        return RateLimited.from_error(error)
    return RegisterSuccess(registration_token=started.registration_token)
