"""``registrationEvents``: the steps of one registration, replayed then live."""

from __future__ import annotations

import weakref
from collections.abc import AsyncGenerator
from contextlib import aclosing
from datetime import datetime
from typing import Annotated

import strawberry
from graphql import GraphQLError
from strawberry.types import Info

from api import fanout
from api.context import Context
from domain import accounts, errors, progress

_CURSOR = "This step's place in the stream: pass it as `after` to resume after it."


@strawberry.type(description="The email was recorded and queued for sending.")
class EmailQueued:
    at: datetime
    cursor: strawberry.ID = strawberry.field(description=_CURSOR)


@strawberry.type(description="The mail server accepted the email.")
class EmailSent:
    at: datetime
    cursor: strawberry.ID = strawberry.field(description=_CURSOR)


@strawberry.type(
    description="Sending failed; `willRetry` says whether it is tried again, and when."
)
class EmailDeliveryFailed:
    at: datetime
    will_retry: bool
    retry_at: datetime | None
    reason: str
    cursor: strawberry.ID = strawberry.field(description=_CURSOR)


@strawberry.type(description="The address was verified. The subscription ends after this event.")
class EmailVerified:
    at: datetime
    cursor: strawberry.ID = strawberry.field(description=_CURSOR)


RegistrationEvent = Annotated[
    EmailQueued | EmailSent | EmailDeliveryFailed | EmailVerified,
    strawberry.union("RegistrationEvent"),
]


# The hub gives all local watchers of a registration the same step object:
# converting it once lets their executions be shared (see api.fanout).
_EVENTS: weakref.WeakKeyDictionary[progress.RegistrationStep, RegistrationEvent] = (
    weakref.WeakKeyDictionary()
)


def _event(step: progress.RegistrationStep) -> RegistrationEvent:
    event = _EVENTS.get(step)
    if event is None:
        event = _EVENTS[step] = fanout.shareable(_convert(step))
    return event


def _convert(step: progress.RegistrationStep) -> RegistrationEvent:
    cursor = strawberry.ID(str(step.id))
    match step.step:
        case progress.Step.EMAIL_QUEUED:
            return EmailQueued(at=step.at, cursor=cursor)
        case progress.Step.EMAIL_SENT:
            return EmailSent(at=step.at, cursor=cursor)
        case progress.Step.EMAIL_FAILED:
            return EmailDeliveryFailed(
                at=step.at,
                will_retry=step.will_retry,
                retry_at=step.retry_at,
                reason=step.reason or "delivery failed",
                cursor=cursor,
            )
        case progress.Step.EMAIL_VERIFIED:
            return EmailVerified(at=step.at, cursor=cursor)


def _error(error: errors.DomainError, code: str) -> GraphQLError:
    return GraphQLError(error.message, extensions={"code": code})


async def registration_events(
    info: Info[Context, None],
    registration_token: str,
    after: Annotated[
        strawberry.ID | None,
        strawberry.argument(description="Resume after the step with this cursor (a reconnect)."),
    ] = None,
) -> AsyncGenerator[RegistrationEvent, None]:
    try:
        steps = await accounts.watch_registration(
            accounts.WatchRegistration(
                registration_token=registration_token,
                after=None if after is None else str(after),
            ),
            info.context.accounts,
            info.context.feed,
        )
        async with aclosing(steps):  # unregisters the watcher when the client leaves
            async for step in steps:
                yield _event(step)
    except errors.ExpiredToken as error:
        raise _error(error, "EXPIRED_TOKEN") from None
    except errors.InvalidToken:
        raise GraphQLError(
            "This registration token is not valid: use the registrationToken that "
            "register or resendVerificationEmail returned.",
            extensions={"code": "INVALID_TOKEN"},
        ) from None
    except errors.WatchOverflow as error:
        raise _error(error, "TOO_SLOW") from None
    except errors.InvalidInput as error:
        raise _error(error, "BAD_USER_INPUT") from None
