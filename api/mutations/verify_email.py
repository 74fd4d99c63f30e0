"""``verifyEmail``: consume the link from the verification email."""

from __future__ import annotations

from typing import Annotated

import strawberry
from strawberry.types import Info

from api.context import Context
from api.types import ExpiredToken, InvalidToken, User
from domain import accounts, errors


@strawberry.type
class VerifyEmailSuccess:
    user: User


VerifyEmailResult = Annotated[
    VerifyEmailSuccess | InvalidToken | ExpiredToken, strawberry.union("VerifyEmailResult")
]


async def verify_email(info: Info[Context, None], token: str) -> VerifyEmailResult:
    try:
        user = await accounts.verify_email(accounts.VerifyEmail(token=token), info.context.accounts)
    except errors.ExpiredToken as error:
        return ExpiredToken(message=error.message)
    except errors.InvalidToken as error:
        return InvalidToken(message=error.message)
    return VerifyEmailSuccess(user=User.from_domain(user))
