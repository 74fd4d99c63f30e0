"""``requestPasswordReset`` and ``resetPassword``: a new password through an emailed link."""

from __future__ import annotations

from typing import Annotated

import strawberry
from strawberry.types import Info

from api.context import Context
from api.types import ExpiredToken, InvalidInput, InvalidToken, RateLimited, User, token_error
from domain import errors, recovery


@strawberry.type(
    description="Accepted. The same answer for every address; only an account's own "
    "address receives a link."
)
class RequestPasswordResetSuccess:
    message: str


RequestPasswordResetResult = Annotated[
    RequestPasswordResetSuccess | InvalidInput | RateLimited,
    strawberry.union("RequestPasswordResetResult"),
]


@strawberry.type(description="The password was changed and every session of the account ended.")
class ResetPasswordSuccess:
    user: User


ResetPasswordResult = Annotated[
    ResetPasswordSuccess | InvalidToken | ExpiredToken | InvalidInput,
    strawberry.union("ResetPasswordResult"),
]


async def request_password_reset(
    info: Info[Context, None], email: str
) -> RequestPasswordResetResult:
    try:
        await recovery.request_password_reset(
            recovery.RequestPasswordReset(email=email), info.context.accounts
        )
    except errors.InvalidInput as error:
        return InvalidInput.from_error(error)
    except errors.RateLimited as error:
        return RateLimited.from_error(error)
    return RequestPasswordResetSuccess(
        message="If this address has an account, a link to reset its password is on its way."
    )


async def reset_password(
    info: Info[Context, None], token: str, new_password: str
) -> ResetPasswordResult:
    command = recovery.ResetPassword(token=token, new_password=new_password)
    try:
        user = await recovery.reset_password(command, info.context.accounts)
    except errors.InvalidInput as error:
        return InvalidInput.from_error(error)
    except (errors.InvalidToken, errors.ExpiredToken) as error:
        return token_error(error)
    return ResetPasswordSuccess(user=User.from_domain(user))
