"""The operator's view of email delivery: admin-only fields over ``domain.operations``.

Without an admin API key every field here fails with a ``FORBIDDEN`` error and
reveals nothing; the check is the use case's, so no resolver can forget it.
The fields are nullable: a refused one is null, and the rest of the
response (a ``me``, a mutation that ran) keeps its data.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import strawberry
from graphql import GraphQLError
from strawberry.types import Info

from api.context import Context
from domain import emails, errors, operations

EmailKind = strawberry.enum(emails.EmailKind, name="EmailKind", description="What an email is for.")
DeliveryStatus = strawberry.enum(
    emails.DeliveryStatus,
    name="DeliveryStatus",
    description="Where a delivery stands; SUPPRESSED means nothing was sent, on purpose.",
)


@strawberry.type(description="One email Herald meant to send, and what became of it.")
class EmailDelivery:
    id: strawberry.ID
    kind: EmailKind  # type: ignore[valid-type]
    status: DeliveryStatus  # type: ignore[valid-type]
    recipient: str | None = strawberry.field(
        description="Null for a suppressed delivery to an address without an account."
    )
    suppressed: bool
    attempts: int = strawberry.field(description="Attempts since it was last queued.")
    manual_retries: int = strawberry.field(description="Times an operator queued it again.")
    last_smtp_code: int | None
    last_error: str | None
    message_id: str
    created_at: datetime
    updated_at: datetime
    sent_at: datetime | None

    @classmethod
    def from_domain(cls, record: emails.DeliveryRecord) -> EmailDelivery:
        return cls(
            id=strawberry.ID(str(record.id)),
            kind=record.kind,
            status=record.status,
            recipient=record.recipient,
            suppressed=record.suppressed,
            attempts=record.attempts,
            manual_retries=record.manual_retries,
            last_smtp_code=record.last_smtp_code,
            last_error=record.last_error,
            message_id=record.message_id,
            created_at=record.created_at,
            updated_at=record.updated_at,
            sent_at=record.sent_at,
        )


@strawberry.type
class EmailDeliveryEdge:
    cursor: str
    node: EmailDelivery


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None = strawberry.field(description="Pass as `after` for the next page.")


@strawberry.type(description="A page of deliveries, newest first.")
class EmailDeliveryConnection:
    edges: list[EmailDeliveryEdge]
    page_info: PageInfo


@strawberry.type(description="Deliveries created in a window, by status.")
class DeliveryCounts:
    queued: int
    sending: int
    sent: int
    failed: int
    suppressed: int
    total: int

    @classmethod
    def from_domain(cls, counts: emails.DeliveryCounts) -> DeliveryCounts:
        s = emails.DeliveryStatus
        return cls(
            queued=counts[s.QUEUED],
            sending=counts[s.SENDING],
            sent=counts[s.SENT],
            failed=counts[s.FAILED],
            suppressed=counts[s.SUPPRESSED],
            total=counts.total,
        )


@strawberry.type
class DeliveryStats:
    last_hour: DeliveryCounts
    last_day: DeliveryCounts


@strawberry.type(description="The delivery was queued again; the worker sends it shortly.")
class RetryEmailDeliverySuccess:
    delivery: EmailDelivery


@strawberry.type(description="There is no email delivery with this id.")
class DeliveryNotFound:
    message: str


@strawberry.type(description="Only a delivery that failed for good can be retried.")
class DeliveryNotRetryable:
    message: str
    status: DeliveryStatus  # type: ignore[valid-type]


RetryEmailDeliveryResult = Annotated[
    RetryEmailDeliverySuccess | DeliveryNotFound | DeliveryNotRetryable,
    strawberry.union("RetryEmailDeliveryResult"),
]


def _forbidden(error: errors.NotAuthorized) -> GraphQLError:
    return GraphQLError(error.message, extensions={"code": "FORBIDDEN"})


def _bad_input(error: errors.InvalidInput) -> GraphQLError:
    fields = [{"field": p.field, "message": p.message} for p in error.fields]
    return GraphQLError(error.message, extensions={"code": "BAD_USER_INPUT", "fields": fields})


async def email_deliveries(
    info: Info[Context, None],
    status: DeliveryStatus | None = None,  # type: ignore[valid-type]
    kind: EmailKind | None = None,  # type: ignore[valid-type]
    first: int = 20,
    after: str | None = None,
) -> EmailDeliveryConnection | None:
    query = operations.ListDeliveries(status=status, kind=kind, first=first, after=after)
    try:
        page = await operations.list_deliveries(info.context.bearer, query, info.context.operations)
    except errors.NotAuthorized as error:
        raise _forbidden(error) from None
    except errors.InvalidInput as error:
        raise _bad_input(error) from None
    edges = [
        EmailDeliveryEdge(cursor=operations.cursor_of(d), node=EmailDelivery.from_domain(d))
        for d in page.deliveries
    ]
    return EmailDeliveryConnection(
        edges=edges,
        page_info=PageInfo(has_next_page=page.has_next_page, end_cursor=page.end_cursor),
    )


async def email_delivery(info: Info[Context, None], id: strawberry.ID) -> EmailDelivery | None:
    try:
        record = await operations.get_delivery(info.context.bearer, id, info.context.operations)
    except errors.NotAuthorized as error:
        raise _forbidden(error) from None
    return None if record is None else EmailDelivery.from_domain(record)


async def retry_email_delivery(
    info: Info[Context, None], id: strawberry.ID
) -> RetryEmailDeliveryResult:
    try:
        record = await operations.retry_delivery(info.context.bearer, id, info.context.operations)
    except errors.NotAuthorized as error:
        raise _forbidden(error) from None
    except errors.DeliveryNotFound as error:
        return DeliveryNotFound(message=error.message)
    except errors.DeliveryNotRetryable as error:
        return DeliveryNotRetryable(
            message=error.message, status=emails.DeliveryStatus(error.status)
        )
    return RetryEmailDeliverySuccess(delivery=EmailDelivery.from_domain(record))


async def delivery_stats(info: Info[Context, None]) -> DeliveryStats | None:
    try:
        stats = await operations.delivery_stats(info.context.bearer, info.context.operations)
    except errors.NotAuthorized as error:
        raise _forbidden(error) from None
    return DeliveryStats(
        last_hour=DeliveryCounts.from_domain(stats.last_hour),
        last_day=DeliveryCounts.from_domain(stats.last_day),
    )
