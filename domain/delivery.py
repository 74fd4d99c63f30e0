"""Sending one recorded email: the use case behind the worker's job.

The job carries only the delivery id; everything else, the link's token
included, is loaded or minted here, so job arguments never hold a secret.
Each outcome is recorded on the delivery and as a step of its registration,
in one transaction.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import random
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from domain import accounts, emails, errors, ports, progress, users

log = logging.getLogger(__name__)


class Outcome(enum.StrEnum):
    SENT = "sent"
    SUPPRESSED = "suppressed"
    SKIPPED = "skipped"  # already sent, failed for good, or unknown
    FAILED = "failed"


@dataclass(frozen=True)
class Backoff:
    """When to try a transient failure again: doubling delays, capped, jittered."""

    base_seconds: float = 30
    max_seconds: float = 3600
    max_attempts: int = 8
    jitter: Callable[[], float] = field(default=random.random, compare=False)

    def delay(self, attempt: int) -> float:
        """Seconds to wait after the failed ``attempt`` (1 for the first)."""
        ceiling = min(self.max_seconds, self.base_seconds * 2.0 ** (attempt - 1))
        # Half fixed, half random: spreads a burst of retries without ever
        # retrying sooner than half the nominal delay.
        return ceiling / 2 + self.jitter() * ceiling / 2

    def retry_at(self, attempt: int, now: datetime) -> datetime | None:
        if attempt >= self.max_attempts:
            return None
        return now + timedelta(seconds=self.delay(attempt))


@dataclass(frozen=True)
class Courier:
    uow: ports.UnitOfWorkFactory
    tokens: ports.TokenSigner
    renderer: ports.EmailRenderer
    mailer: ports.Mailer
    clock: ports.Clock
    public_url: str
    # Units of work whose statements each commit as they run, for a step that
    # is a single statement (the claim): it needs no transaction around it,
    # and is spared two round trips. None: ``uow``.
    single_statement: ports.UnitOfWorkFactory | None = None
    verification_max_age: int = 48 * 3600
    password_reset_max_age: int = 3600
    email_change_max_age: int = 24 * 3600
    backoff: Backoff = Backoff()
    # How long one attempt may hold a delivery: past it, the attempt's worker
    # is taken for dead and the delivery may be claimed again.
    lease_seconds: float = 120


_ADDRESS = re.compile(r"[^\s<>\"'(),;:\[\]]+@([A-Za-z0-9.-]+)")


def redact(text: str) -> str:
    """Text fit for logs: every address in it keeps its domain, not its person.

    SMTP replies often quote the recipient ("550 <ann@example.com>: unknown").
    """
    return _ADDRESS.sub(r"***@\1", text)


def _link(courier: Courier, path: str, purpose: str, payload: dict[str, Any]) -> str:
    return f"{courier.public_url}/{path}?token={courier.tokens.sign(purpose, payload)}"


def _context(courier: Courier, delivery: emails.Delivery) -> dict[str, Any]:
    """What the templates of the delivery's kind need; links are signed here,
    as the email is sent, from the claims recorded with the request."""
    context: dict[str, Any] = {"email": delivery.recipient, "public_url": courier.public_url}
    claims = delivery.claims
    match delivery.kind:
        case emails.EmailKind.VERIFY_EMAIL:
            payload = {
                "u": str(delivery.user_id),
                "e": delivery.recipient,
                "n": delivery.verification_nonce,
            }
            context["link"] = _link(courier, "verify-email", accounts.VERIFY_EMAIL_PURPOSE, payload)
            context["valid_for_seconds"] = courier.verification_max_age
        case emails.EmailKind.PASSWORD_RESET:
            payload = {"u": str(delivery.user_id), **claims}
            context["link"] = _link(
                courier, "reset-password", accounts.PASSWORD_RESET_PURPOSE, payload
            )
            context["valid_for_seconds"] = courier.password_reset_max_age
        case emails.EmailKind.EMAIL_CHANGE_CONFIRM:
            payload = {"u": str(delivery.user_id), **claims}
            context["link"] = _link(
                courier, "confirm-email-change", accounts.EMAIL_CHANGE_PURPOSE, payload
            )
            context["valid_for_seconds"] = courier.email_change_max_age
        case emails.EmailKind.EMAIL_CHANGE_NOTICE:
            context["new_email"] = users.mask(claims["new"])
        case _:
            pass
    return context


async def _step(
    uow: ports.UnitOfWork,
    delivery: emails.Delivery,
    step: progress.Step,
    now: datetime,
    **details: Any,
) -> None:
    if delivery.registration_id is not None:
        await uow.progress.record(delivery.registration_id, step, now, **details)


async def deliver(delivery_id: uuid.UUID, courier: Courier) -> Outcome:
    """Send a delivery unless it was already sent.

    A transient failure records the reason and raises ``EmailDeliveryError``
    (carrying when to retry) so the job is retried; a permanent one, or the
    last attempt, records the delivery as failed and returns, because retrying
    cannot help.
    """
    async with (courier.single_statement or courier.uow)() as uow:
        # One UPDATE; when it claims nothing, one read of why.
        delivery = await uow.deliveries.claim(
            delivery_id, courier.clock.now(), lease_seconds=courier.lease_seconds
        )
        await uow.commit()
    if delivery is None:
        return Outcome.SKIPPED
    # One attempt never outlives its lease: past it, another attempt could
    # take the delivery over and both would send.
    budget = courier.lease_seconds * 0.8
    if delivery.suppressed and delivery.registration_id is None:
        # Nobody watches this one (a reset for an address without an
        # account, a change to a taken address): nothing to look like.
        await _record_sent(courier, delivery, suppressed=True)
        return Outcome.SUPPRESSED
    try:
        if delivery.suppressed or delivery.recipient is None:
            # Nothing may be sent, but the attempt must look like one to a
            # watcher: the same conversation with the mail server up to the
            # message itself, so it takes about as long and fails when a real
            # send would (see ``emails.EmailRequest``).
            async with asyncio.timeout(budget):
                await courier.mailer.rehearse()
        else:
            content = courier.renderer.render(
                delivery.kind, _context(courier, delivery), delivery.locale
            )
            message = emails.OutgoingEmail(
                recipient=delivery.recipient, message_id=delivery.message_id, content=content
            )
            async with asyncio.timeout(budget):
                await courier.mailer.send(message)
    except errors.DeliveryFailure as failure:
        return await _failed(courier, delivery, failure)
    except TimeoutError:
        timed_out = errors.DeliveryFailure(transient=True, code=None, reason="timed out")
        return await _failed(courier, delivery, timed_out)
    except Exception as exc:
        # A bug (a broken template, say) is not the mail server's fault: record
        # it so the delivery does not sit in "sending" forever, then let the
        # job fail loudly with its traceback.
        async with courier.uow() as uow:
            now = courier.clock.now()
            reason = f"internal error: {type(exc).__name__}"
            if await uow.deliveries.mark_failed(delivery.id, now, None, reason):
                await _step(uow, delivery, progress.Step.EMAIL_FAILED, now, reason=reason)
            await uow.commit()
        raise

    if delivery.suppressed or delivery.recipient is None:
        await _record_sent(courier, delivery, suppressed=True)
        return Outcome.SUPPRESSED
    await _record_sent(courier, delivery, suppressed=False)
    log.info("email %s (%s) sent to %s", delivery.id, delivery.kind, redact(delivery.recipient))
    return Outcome.SENT


async def _record_sent(courier: Courier, delivery: emails.Delivery, *, suppressed: bool) -> None:
    # The mail server has the message: losing this write now would have the
    # job retried and the email sent again, so it is tried a few times before
    # giving up (it is idempotent).
    for attempt in range(5):
        try:
            async with courier.uow() as uow:
                now = courier.clock.now()
                if suppressed:
                    settled = await uow.deliveries.mark_suppressed(delivery.id, now)
                else:
                    settled = await uow.deliveries.mark_sent(delivery.id, now)
                # Not settled: an earlier try of this write did commit, or the
                # link was used first; either way the step is recorded already.
                if settled:
                    await _step(uow, delivery, progress.Step.EMAIL_SENT, now)
                await uow.commit()
            return
        except Exception:
            if attempt == 4:
                raise
            log.warning("could not record email %s as sent; trying again", delivery.id)
            await asyncio.sleep(0.5 * 2**attempt)


async def _failed(
    courier: Courier, delivery: emails.Delivery, failure: errors.DeliveryFailure
) -> Outcome:
    now = courier.clock.now()
    retry_at = courier.backoff.retry_at(delivery.attempts, now) if failure.transient else None
    # What a watcher sees: the SMTP code and the kind of failure, never the
    # server's own words, which may quote addresses or internal host names.
    reason = f"{failure.code} reply" if failure.code else "mail server unreachable"
    async with courier.uow() as uow:
        if retry_at is None:
            settled = await uow.deliveries.mark_failed(
                delivery.id, now, failure.code, failure.reason
            )
        else:
            settled = await uow.deliveries.mark_retrying(
                delivery.id, now, failure.code, failure.reason
            )
        if not settled:
            # The link was used meanwhile: the email arrived after all (the
            # server took it and the reply was lost). Nothing to retry.
            return Outcome.SKIPPED
        await _step(
            uow,
            delivery,
            progress.Step.EMAIL_FAILED,
            now,
            will_retry=retry_at is not None,
            retry_at=retry_at,
            reason=reason,
        )
        await uow.commit()
    log.warning(
        "email %s (%s) to %s %s on attempt %d: %s",
        delivery.id,
        delivery.kind,
        redact(delivery.recipient or ""),
        "will be retried" if retry_at else "failed",
        delivery.attempts,
        redact(failure.message),
    )
    if retry_at is not None:
        raise errors.EmailDeliveryError(failure, retry_at)
    return Outcome.FAILED


async def queue_stranded(
    courier: Courier, *, older_than: timedelta = timedelta(minutes=2), limit: int = 200
) -> int:
    """Give a new job to every delivery that no job will send.

    A registration commits with its delivery row even when the queue was down
    or disabled, and a job can end without finishing its delivery (its
    database retries ran out, the worker was stopped); this sweep, run
    periodically by the worker, is what makes sure such an email is still sent.
    Returns how many it queued.
    """
    now = courier.clock.now()
    async with courier.uow() as uow:
        waiting = await uow.deliveries.stranded(
            created_before=now - older_than,
            leased_before=now - timedelta(seconds=courier.lease_seconds),
            limit=limit,
        )
        queued = 0
        for delivery_id in waiting:
            queued += await uow.outbox.defer(delivery_id)
        await uow.commit()
    return queued
