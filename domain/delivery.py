"""Sending one recorded email: the use case behind the worker's job.

The job carries only the delivery id; everything else, the link's token
included, is loaded or minted here, so job arguments never hold a secret.
"""

from __future__ import annotations

import enum
import logging
import re
import uuid
from dataclasses import dataclass
from typing import Any

from domain import accounts, emails, errors, ports

log = logging.getLogger(__name__)


class Outcome(enum.StrEnum):
    SENT = "sent"
    SKIPPED = "skipped"  # already sent, failed for good, or unknown
    FAILED = "failed"


@dataclass(frozen=True)
class Courier:
    uow: ports.UnitOfWorkFactory
    tokens: ports.TokenSigner
    renderer: ports.EmailRenderer
    mailer: ports.Mailer
    clock: ports.Clock
    public_url: str
    verification_max_age: int = 48 * 3600


_ADDRESS = re.compile(r"[^\s<>\"'(),;:\[\]]+@([A-Za-z0-9.-]+)")


def redact(text: str) -> str:
    """Text fit for logs: every address in it keeps its domain, not its person.

    SMTP replies often quote the recipient ("550 <ann@example.com>: unknown").
    """
    return _ADDRESS.sub(r"***@\1", text)


def _duration(seconds: int) -> str:
    if seconds >= 2 * 3600:
        return f"{seconds // 3600} hours"
    if seconds >= 120:
        return f"{seconds // 60} minutes"
    return f"{seconds} seconds"


def _context(courier: Courier, delivery: emails.Delivery) -> dict[str, Any]:
    context: dict[str, Any] = {"email": delivery.recipient, "public_url": courier.public_url}
    if delivery.kind is emails.EmailKind.VERIFY_EMAIL:
        token = courier.tokens.sign(
            accounts.VERIFY_EMAIL_PURPOSE,
            {"u": str(delivery.user_id), "e": delivery.recipient, "n": delivery.verification_nonce},
        )
        context["link"] = f"{courier.public_url}/verify-email?token={token}"
        context["valid_for"] = _duration(courier.verification_max_age)
    return context


async def deliver(delivery_id: uuid.UUID, courier: Courier, *, last_attempt: bool) -> Outcome:
    """Send a delivery unless it was already sent.

    A transient failure records the reason and raises ``EmailDeliveryError`` so
    the job is retried; a permanent one (or the last attempt) records the
    delivery as failed and returns, because retrying cannot help.
    """
    async with courier.uow() as uow:
        delivery = await uow.deliveries.claim(delivery_id, courier.clock.now())
        await uow.commit()
    if delivery is None:
        return Outcome.SKIPPED

    try:
        content = courier.renderer.render(delivery.kind, _context(courier, delivery))
        message = emails.OutgoingEmail(
            recipient=delivery.recipient, message_id=delivery.message_id, content=content
        )
        await courier.mailer.send(message)
    except errors.DeliveryFailure as failure:
        retry = failure.transient and not last_attempt
        async with courier.uow() as uow:
            mark = uow.deliveries.mark_retrying if retry else uow.deliveries.mark_failed
            await mark(delivery.id, courier.clock.now(), failure.code, failure.reason)
            await uow.commit()
        log.warning(
            "email %s (%s) to %s %s on attempt %d: %s",
            delivery.id,
            delivery.kind,
            redact(delivery.recipient),
            "will be retried" if retry else "failed",
            delivery.attempts,
            redact(failure.message),
        )
        if retry:
            raise errors.EmailDeliveryError(failure) from failure
        return Outcome.FAILED
    except Exception as exc:
        # A bug (a broken template, say) is not the mail server's fault: record
        # it so the delivery does not sit in "sending" forever, then let the
        # job fail loudly with its traceback.
        async with courier.uow() as uow:
            reason = f"internal error: {type(exc).__name__}"
            await uow.deliveries.mark_failed(delivery.id, courier.clock.now(), None, reason)
            await uow.commit()
        raise

    async with courier.uow() as uow:
        await uow.deliveries.mark_sent(delivery.id, courier.clock.now())
        await uow.commit()
    log.info("email %s (%s) sent to %s", delivery.id, delivery.kind, redact(delivery.recipient))
    return Outcome.SENT
