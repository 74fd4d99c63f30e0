"""The operator's use cases: admin keys, the listing, retrying a failed email, counts."""

from __future__ import annotations

import uuid

import pytest

from domain import accounts, delivery, emails, errors, operations, progress
from tests.unit.fakes import ADMIN_KEY, World, world


async def register(w: World, *addresses: str) -> list[uuid.UUID]:
    """Register each address a minute apart; the ids of their deliveries, oldest first."""
    for address in addresses:
        await accounts.register(accounts.Register(address, "correct horse"), w.accounts)
        w.clock.advance(61)
    return list(w.store.deliveries)


async def failed_for_good(w: World) -> uuid.UUID:
    [delivery_id] = await register(w, "ann@example.com")
    w.mailer.failures.append(errors.DeliveryFailure(transient=False, code=550, reason="no user"))
    assert await delivery.deliver(delivery_id, w.courier) is delivery.Outcome.FAILED
    return delivery_id


@pytest.mark.parametrize("credential", [None, "", "wrong-key-" + "x" * 30, ADMIN_KEY + " "])
async def test_every_operator_use_case_refuses_a_missing_or_wrong_key(
    credential: str | None,
) -> None:
    w = world()
    delivery_id = await failed_for_good(w)
    ops = w.operations
    with pytest.raises(errors.NotAuthorized):
        await operations.list_deliveries(credential, operations.ListDeliveries(), ops)
    with pytest.raises(errors.NotAuthorized):
        await operations.get_delivery(credential, str(delivery_id), ops)
    with pytest.raises(errors.NotAuthorized):
        await operations.get_delivery(credential, "not-an-id", ops)
    with pytest.raises(errors.NotAuthorized):
        await operations.retry_delivery(credential, str(delivery_id), ops)
    with pytest.raises(errors.NotAuthorized):
        await operations.delivery_stats(credential, ops)
    assert w.store.deliveries[delivery_id]["status"] is emails.DeliveryStatus.FAILED


async def test_no_key_is_admitted_when_none_is_configured() -> None:
    keys = operations.AdminKeys.of([])
    for credential in (None, "", ADMIN_KEY):
        with pytest.raises(errors.NotAuthorized):
            keys.admit(credential)
    # Any of several configured keys is admitted (rotation).
    operations.AdminKeys.of(["a" * 32, ADMIN_KEY]).admit(ADMIN_KEY)


async def test_the_listing_pages_newest_first_with_cursors() -> None:
    w = world()
    ids = await register(w, *(f"user{n}@example.com" for n in range(5)))
    seen: list[uuid.UUID] = []
    after = None
    pages = 0
    while True:
        page = await operations.list_deliveries(
            ADMIN_KEY, operations.ListDeliveries(first=2, after=after), w.operations
        )
        pages += 1
        seen += [d.id for d in page.deliveries]
        if not page.has_next_page:
            break
        after = page.end_cursor
    assert seen == list(reversed(ids))
    assert pages == 3


async def test_the_listing_filters_by_status_and_kind() -> None:
    w = world()
    failed = await failed_for_good(w)
    await register(w, "bob@example.com")
    by_status = await operations.list_deliveries(
        ADMIN_KEY, operations.ListDeliveries(status=emails.DeliveryStatus.FAILED), w.operations
    )
    assert [(d.id, d.last_smtp_code, d.attempts) for d in by_status.deliveries] == [
        (failed, 550, 1)
    ]
    other_kind = await operations.list_deliveries(
        ADMIN_KEY, operations.ListDeliveries(kind=emails.EmailKind.ACCOUNT_EXISTS), w.operations
    )
    assert other_kind.deliveries == [] and other_kind.end_cursor is None


@pytest.mark.parametrize(
    ("query", "field"),
    [
        (operations.ListDeliveries(first=0), "first"),
        (operations.ListDeliveries(first=operations.MAX_PAGE_SIZE + 1), "first"),
        (operations.ListDeliveries(after="not a cursor"), "after"),
        (operations.ListDeliveries(after="MjAyNi0wMS0wMVQwMDowMDowMHxub3Bl"), "after"),
    ],
)
async def test_a_bad_page_request_names_its_field(
    query: operations.ListDeliveries, field: str
) -> None:
    w = world()
    with pytest.raises(errors.InvalidInput) as raised:
        await operations.list_deliveries(ADMIN_KEY, query, w.operations)
    assert [p.field for p in raised.value.fields] == [field]


async def test_a_failed_delivery_is_queued_again_and_then_sent() -> None:
    w = world()
    delivery_id = await failed_for_good(w)
    record = await operations.retry_delivery(ADMIN_KEY, str(delivery_id), w.operations)
    assert (record.status, record.attempts, record.manual_retries) == (
        emails.DeliveryStatus.QUEUED,
        0,
        1,
    )
    assert w.store.deliveries[delivery_id]["job"] is True  # a new job was deferred
    # The registration's watchers see it queued again after the failure.
    steps = [s.step for s in w.store.steps]
    assert steps == [
        progress.Step.EMAIL_QUEUED,
        progress.Step.EMAIL_FAILED,
        progress.Step.EMAIL_QUEUED,
    ]
    assert await delivery.deliver(delivery_id, w.courier) is delivery.Outcome.SENT
    assert [m.recipient for m in w.mailer.sent] == ["ann@example.com"]


async def test_only_a_failed_delivery_can_be_retried() -> None:
    w = world()
    [queued] = await register(w, "ann@example.com")
    with pytest.raises(errors.DeliveryNotRetryable) as raised:
        await operations.retry_delivery(ADMIN_KEY, str(queued), w.operations)
    assert raised.value.status == "queued"
    for unknown in (str(uuid.uuid4()), "not-an-id"):
        with pytest.raises(errors.DeliveryNotFound):
            await operations.retry_delivery(ADMIN_KEY, unknown, w.operations)
    assert await operations.get_delivery(ADMIN_KEY, "not-an-id", w.operations) is None
    assert w.store.deliveries[queued].get("manual_retries", 0) == 0


async def test_stats_count_the_last_hour_and_the_last_day_by_status() -> None:
    w = world()
    await failed_for_good(w)  # created a day and a bit before "now" below
    w.clock.advance(23 * 3600)
    await register(w, "bob@example.com", "cy@example.com")  # within the last hour
    stats = await operations.delivery_stats(ADMIN_KEY, w.operations)
    queued, failed = emails.DeliveryStatus.QUEUED, emails.DeliveryStatus.FAILED
    assert (stats.last_hour[queued], stats.last_hour[failed], stats.last_hour.total) == (2, 0, 2)
    assert (stats.last_day[queued], stats.last_day[failed], stats.last_day.total) == (2, 1, 3)
    w.clock.advance(3600)
    later = await operations.delivery_stats(ADMIN_KEY, w.operations)
    assert (later.last_hour.total, later.last_day.total) == (0, 2)


async def test_a_verification_email_superseded_by_a_newer_link_is_not_sent_again() -> None:
    w = world()
    old = await failed_for_good(w)
    w.clock.advance(3600)  # past the cooldown and the hourly cap
    await accounts.resend_verification_email(
        accounts.ResendVerificationEmail("ann@example.com"), w.accounts
    )
    with pytest.raises(errors.DeliveryNotRetryable) as raised:
        await operations.retry_delivery(ADMIN_KEY, str(old), w.operations)
    assert raised.value.status == "failed"
    assert "resendVerificationEmail" in raised.value.message
    assert w.store.deliveries[old]["status"] is emails.DeliveryStatus.FAILED
    assert w.store.deliveries[old].get("manual_retries", 0) == 0
