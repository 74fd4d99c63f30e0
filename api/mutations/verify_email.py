"""``verifyEmail``: consume the link from the verification email."""

from __future__ import annotations

from typing import Annotated

import strawberry
from strawberry.types import Info

from api.context import Context
from api.types import ExpiredToken, InvalidToken, User, token_error
from domain import accounts, errors


@strawberry.type
class VerifyEmailSuccess:
    user: User
    must_choose_password: bool = strawberry.field(
        description=(
            "Someone else also registered this address before it was confirmed, so the "
            "password may not be yours: it no longer works, and a link to choose one "
            "was sent to the confirmed address."
        )
    )


VerifyEmailResult = Annotated[
    VerifyEmailSuccess | InvalidToken | ExpiredToken, strawberry.union("VerifyEmailResult")
]


async def verify_email(info: Info[Context, None], token: str) -> VerifyEmailResult:
    try:
        verified = await accounts.verify_email(
            accounts.VerifyEmail(token=token), info.context.accounts
        )
    except (errors.InvalidToken, errors.ExpiredToken) as error:
        return token_error(error)
    return VerifyEmailSuccess(
        user=User.from_domain(verified.user), must_choose_password=verified.must_choose_password
    )
