"""The courier: send once, retry transient failures, give up on permanent ones."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import uuid
from datetime import timedelta

import pytest

from domain import accounts, delivery, emails, errors, progress
from tests.unit.fakes import World, world


@pytest.fixture
async def queued() -> tuple[World, uuid.UUID]:
    w = world()
    await accounts.register(accounts.Register("ann@example.com", "correct horse"), w.accounts)
    [delivery_id] = w.store.deliveries
    return w, delivery_id


async def test_a_queued_email_is_sent_with_a_link_that_verifies(
    queued: tuple[World, uuid.UUID],
) -> None:
    w, delivery_id = queued
    assert await delivery.deliver(delivery_id, w.courier) is delivery.Outcome.SENT
    [sent] = w.mailer.sent
    assert sent.recipient == "ann@example.com"
    link = json.loads(sent.content.text)["link"]
    assert link.startswith("https://herald.test/verify-email?token=")
    assert w.store.deliveries[delivery_id]["status"] is emails.DeliveryStatus.SENT


async def test_a_sent_email_is_never_sent_again(queued: tuple[World, uuid.UUID]) -> None:
    w, delivery_id = queued
    await delivery.deliver(delivery_id, w.courier)
    assert await delivery.deliver(delivery_id, w.courier) is delivery.Outcome.SKIPPED
    assert len(w.mailer.sent) == 1


async def test_a_transient_failure_is_recorded_and_raised_for_retry(
    queued: tuple[World, uuid.UUID],
) -> None:
    w, delivery_id = queued
    w.mailer.failures.append(errors.DeliveryFailure(transient=True, code=451, reason="greylisted"))
    with pytest.raises(errors.EmailDeliveryError):
        await delivery.deliver(delivery_id, w.courier)
    row = w.store.deliveries[delivery_id]
    assert (row["status"], row["code"], row["attempts"]) == (emails.DeliveryStatus.QUEUED, 451, 1)
    assert await delivery.deliver(delivery_id, w.courier) is delivery.Outcome.SENT
    assert w.store.deliveries[delivery_id]["attempts"] == 2


async def test_a_permanent_failure_is_not_retried(queued: tuple[World, uuid.UUID]) -> None:
    w, delivery_id = queued
    w.mailer.failures.append(
        errors.DeliveryFailure(transient=False, code=550, reason="no such user")
    )
    assert await delivery.deliver(delivery_id, w.courier) is delivery.Outcome.FAILED
    row = w.store.deliveries[delivery_id]
    assert (row["status"], row["code"], row["reason"]) == (
        emails.DeliveryStatus.FAILED,
        550,
        "no such user",
    )
    assert await delivery.deliver(delivery_id, w.courier) is delivery.Outcome.SKIPPED


async def test_a_transient_failure_on_the_last_attempt_fails_for_good(
    queued: tuple[World, uuid.UUID],
) -> None:
    w, delivery_id = queued
    courier = dataclasses.replace(w.courier, backoff=delivery.Backoff(max_attempts=2))
    timeout = errors.DeliveryFailure(transient=True, code=None, reason="timed out")
    w.mailer.failures += [timeout, timeout]
    with pytest.raises(errors.EmailDeliveryError) as caught:
        await delivery.deliver(delivery_id, courier)
    assert caught.value.retry_at > w.clock.now()
    assert await delivery.deliver(delivery_id, courier) is delivery.Outcome.FAILED
    assert w.store.deliveries[delivery_id]["status"] is emails.DeliveryStatus.FAILED
    steps = [(s.step, s.will_retry, s.reason) for s in w.store.steps]
    assert steps == [
        (progress.Step.EMAIL_QUEUED, False, None),
        (progress.Step.EMAIL_FAILED, True, "mail server unreachable"),
        (progress.Step.EMAIL_FAILED, False, "mail server unreachable"),
    ]


async def test_a_bug_marks_the_delivery_failed_and_is_raised(
    queued: tuple[World, uuid.UUID],
) -> None:
    w, delivery_id = queued

    class BrokenRenderer:
        def render(
            self, kind: emails.EmailKind, context: object, locale: str = "en"
        ) -> emails.RenderedEmail:
            raise KeyError("link")

    broken = dataclasses.replace(w.courier, renderer=BrokenRenderer())
    with pytest.raises(KeyError):
        await delivery.deliver(delivery_id, broken)
    row = w.store.deliveries[delivery_id]
    assert (row["status"], row["reason"]) == (
        emails.DeliveryStatus.FAILED,
        "internal error: KeyError",
    )
    assert w.mailer.sent == []


async def test_an_unknown_delivery_is_skipped() -> None:
    w = world()
    assert await delivery.deliver(uuid.uuid4(), w.courier) is delivery.Outcome.SKIPPED


def test_logs_see_only_the_domain_of_an_address() -> None:
    assert delivery.redact("ann.smith@example.com") == "***@example.com"
    assert (
        delivery.redact("550 5.1.1 <ann+x@example.com>: unknown; cc bob@mail.example.org")
        == "550 5.1.1 <***@example.com>: unknown; cc ***@mail.example.org"
    )


async def test_a_suppressed_delivery_sends_nothing_but_reports_sent() -> None:
    w = world()
    started = await accounts.resend_verification_email(
        accounts.ResendVerificationEmail("nobody@example.com"), w.accounts
    )
    [delivery_id] = w.store.deliveries
    assert await delivery.deliver(delivery_id, w.courier) is delivery.Outcome.SUPPRESSED
    assert w.mailer.sent == []
    assert w.store.deliveries[delivery_id]["status"] is emails.DeliveryStatus.SUPPRESSED
    assert [s.step for s in w.store.steps if s.registration_id == started.registration_id] == [
        progress.Step.EMAIL_QUEUED,
        progress.Step.EMAIL_SENT,
    ]


async def test_the_sweep_queues_deliveries_that_got_no_job() -> None:
    w = world()
    w.store.queue_up = False
    await accounts.register(accounts.Register("ann@example.com", "correct horse"), w.accounts)
    assert await delivery.queue_stranded(w.courier) == 0  # the queue is still down
    w.store.queue_up = True
    assert await delivery.queue_stranded(w.courier) == 1
    assert await delivery.queue_stranded(w.courier) == 0


async def test_a_suppressed_delivery_rehearses_and_fails_like_a_real_one() -> None:
    w = world()
    started = await accounts.resend_verification_email(
        accounts.ResendVerificationEmail("nobody@example.com"), w.accounts
    )
    [delivery_id] = w.store.deliveries
    w.mailer.failures.append(errors.DeliveryFailure(transient=True, code=421, reason="busy"))
    with pytest.raises(errors.EmailDeliveryError):
        await delivery.deliver(delivery_id, w.courier)
    assert await delivery.deliver(delivery_id, w.courier) is delivery.Outcome.SUPPRESSED
    assert w.mailer.rehearsals == 2 and w.mailer.sent == []
    assert [s.step for s in w.store.steps if s.registration_id == started.registration_id] == [
        progress.Step.EMAIL_QUEUED,
        progress.Step.EMAIL_FAILED,
        progress.Step.EMAIL_SENT,
    ]


async def test_an_attempt_never_outlives_its_lease(queued: tuple[World, uuid.UUID]) -> None:
    w, delivery_id = queued

    class HangingMailer:
        async def send(self, email: emails.OutgoingEmail) -> None:
            await asyncio.sleep(60)

        async def rehearse(self) -> None:
            await asyncio.sleep(60)

    courier = dataclasses.replace(w.courier, mailer=HangingMailer(), lease_seconds=0.2)
    with pytest.raises(errors.EmailDeliveryError) as caught:
        await delivery.deliver(delivery_id, courier)
    assert caught.value.failure.reason == "timed out"
    assert w.store.deliveries[delivery_id]["status"] is emails.DeliveryStatus.QUEUED


class ClickingMailer:
    """The person opens the link while the worker still waits for the mail
    server's reply; then the reply arrives, or is lost."""

    def __init__(self, w: World, reply_lost: bool) -> None:
        self.w = w
        self.reply_lost = reply_lost

    async def send(self, email: emails.OutgoingEmail) -> None:
        token = json.loads(email.content.text)["link"].split("token=", 1)[1]
        await accounts.verify_email(accounts.VerifyEmail(token), self.w.accounts)
        if self.reply_lost:
            raise errors.DeliveryFailure(transient=True, code=None, reason="connection lost")

    async def rehearse(self) -> None:
        raise AssertionError("not suppressed")


@pytest.mark.parametrize("reply_lost", [False, True])
async def test_a_link_used_before_the_send_is_recorded_still_shows_sent_before_verified(
    queued: tuple[World, uuid.UUID], reply_lost: bool
) -> None:
    w, delivery_id = queued
    clicking = dataclasses.replace(w.courier, mailer=ClickingMailer(w, reply_lost))
    outcome = await delivery.deliver(delivery_id, clicking)
    assert outcome is (delivery.Outcome.SKIPPED if reply_lost else delivery.Outcome.SENT)
    assert [s.step for s in w.store.steps] == [
        progress.Step.EMAIL_QUEUED,
        progress.Step.EMAIL_SENT,
        progress.Step.EMAIL_VERIFIED,
    ]
    assert w.store.deliveries[delivery_id]["status"] is emails.DeliveryStatus.SENT
    # A retry of the job finds nothing left to do.
    assert await delivery.deliver(delivery_id, w.courier) is delivery.Outcome.SKIPPED


async def test_a_delivery_held_by_another_attempt_waits_for_its_lease(
    queued: tuple[World, uuid.UUID],
) -> None:
    w, delivery_id = queued
    claimed_at = w.clock.now()
    async with w.courier.uow() as uow:
        assert await uow.deliveries.claim(delivery_id, claimed_at, lease_seconds=120)
    w.clock.advance(60)
    with pytest.raises(errors.DeliveryLeased) as held:
        await delivery.deliver(delivery_id, w.courier)
    assert held.value.until == claimed_at + timedelta(seconds=w.courier.lease_seconds)
    w.clock.advance(61)  # the first attempt is taken for dead
    assert await delivery.deliver(delivery_id, w.courier) is delivery.Outcome.SENT
    assert len(w.mailer.sent) == 1
