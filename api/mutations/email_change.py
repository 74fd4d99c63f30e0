"""``requestEmailChange`` and ``confirmEmailChange``: moving an account to another address."""

from __future__ import annotations

from typing import Annotated

import strawberry
from strawberry.types import Info

from api.context import Context
from api.types import (
    AddressUnavailable,
    ExpiredToken,
    InvalidCredentials,
    InvalidInput,
    InvalidToken,
    NotSignedIn,
    RateLimited,
    User,
    token_error,
)
from domain import address_change, errors


@strawberry.type(
    description="Accepted: a confirmation link is on its way to the new address, and a "
    "notice to the current one. Nothing changes until the link is opened."
)
class RequestEmailChangeSuccess:
    message: str


RequestEmailChangeResult = Annotated[
    RequestEmailChangeSuccess | NotSignedIn | InvalidCredentials | InvalidInput | RateLimited,
    strawberry.union("RequestEmailChangeResult"),
]


@strawberry.type(description="The account now uses the new, confirmed address.")
class ConfirmEmailChangeSuccess:
    user: User


ConfirmEmailChangeResult = Annotated[
    ConfirmEmailChangeSuccess | InvalidToken | ExpiredToken | AddressUnavailable,
    strawberry.union("ConfirmEmailChangeResult"),
]


async def request_email_change(
    info: Info[Context, None], new_email: str, password: str
) -> RequestEmailChangeResult:
    command = address_change.RequestEmailChange(
        access_token=info.context.bearer,
        new_email=new_email,
        password=password,
        client=info.context.client,
    )
    try:
        await address_change.request_email_change(command, info.context.accounts)
    except errors.NotSignedIn as error:
        return NotSignedIn(message=error.message)
    except errors.InvalidCredentials as error:
        return InvalidCredentials(message=error.message)
    except errors.InvalidInput as error:
        return InvalidInput.from_error(error)
    except errors.RateLimited as error:
        return RateLimited.from_error(error)
    return RequestEmailChangeSuccess(message="Open the link sent to the new address to confirm it.")


async def confirm_email_change(info: Info[Context, None], token: str) -> ConfirmEmailChangeResult:
    command = address_change.ConfirmEmailChange(token=token)
    try:
        user = await address_change.confirm_email_change(command, info.context.accounts)
    except errors.AddressUnavailable as error:
        return AddressUnavailable(message=error.message)
    except (errors.InvalidToken, errors.ExpiredToken) as error:
        return token_error(error)
    return ConfirmEmailChangeSuccess(user=User.from_domain(user))
