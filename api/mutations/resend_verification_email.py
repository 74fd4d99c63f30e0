"""``resendVerificationEmail``: a fresh link, answered the same for every address."""

from __future__ import annotations

from typing import Annotated

import strawberry
from strawberry.types import Info

from api.context import Context
from api.types import InvalidInput, RateLimited
from domain import accounts, errors


@strawberry.type(
    description=(
        "The request was accepted. The same answer is given for unknown, unverified "
        "and verified addresses; only an unverified account receives a new link."
    )
)
class ResendVerificationEmailSuccess:
    registration_token: str


ResendVerificationEmailResult = Annotated[
    ResendVerificationEmailSuccess | InvalidInput | RateLimited,
    strawberry.union("ResendVerificationEmailResult"),
]


async def resend_verification_email(
    info: Info[Context, None], email: str
) -> ResendVerificationEmailResult:
    command = accounts.ResendVerificationEmail(email=email)
    try:
        started = await accounts.resend_verification_email(command, info.context.accounts)
    except errors.InvalidInput as error:
        return InvalidInput.from_error(error)
    except errors.RateLimited as error:
        return RateLimited.from_error(error)
    return ResendVerificationEmailSuccess(registration_token=started.registration_token)
