"""Event handlers, run inside the unit of work's transaction before it commits.

Queueing the email here, not after commit, is what makes registration and its
email one atomic fact: both commit or neither does. The registration's first
step (``EMAIL_QUEUED``) is recorded in the same transaction, so a watcher never
sees a step that did not happen.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime

from domain import emails, events, ports, progress


async def publish(uow: ports.UnitOfWork, happened: Iterable[events.Event], now: datetime) -> None:
    for event in happened:
        match event:
            case events.UserRegistered():
                request = emails.EmailRequest(
                    kind=emails.EmailKind.VERIFY_EMAIL,
                    user_id=event.user_id,
                    registration_id=event.registration_id,
                    verification_nonce=event.verification_nonce,
                )
                await _queue(uow, request, now)
            case events.RegistrationRepeated() | events.VerificationEmailRequested():
                await _queue(uow, _verification_or_notice(event), now)
            case events.EmailVerified():
                # The link may be used before the worker records that the mail
                # server took the email: its use proves the email arrived, so
                # its registration shows EmailSent before EmailVerified, once.
                for registration_id in await uow.deliveries.received(
                    event.user_id, event.verification_nonce, event.at
                ):
                    await uow.progress.record(registration_id, progress.Step.EMAIL_SENT, event.at)
                await uow.progress.record_verified(
                    event.user_id, event.verification_nonce, event.at
                )
                # An address is verified once per account (``mark_verified``
                # matches only an unverified one), so this is sent once.
                await _queue(uow, emails.EmailRequest(emails.EmailKind.WELCOME, event.user_id), now)
            case events.PasswordResetRequested():
                claims = {"t": _epoch(now)}
                if event.fingerprint is not None and event.email is not None:
                    claims |= {"f": event.fingerprint, "e": event.email}
                request = emails.EmailRequest(
                    emails.EmailKind.PASSWORD_RESET,
                    event.user_id,
                    suppressed=event.user_id is None,
                    claims=claims,
                )
                await _queue(uow, request, now)
            case events.PasswordChanged():
                changed = emails.EmailRequest(emails.EmailKind.PASSWORD_CHANGED, event.user_id)
                await _queue(uow, changed, now)
            case events.EmailChangeRequested():
                claims = {
                    "old": event.current_email,
                    "new": event.new_email,
                    "n": str(event.verification_nonce),
                    "f": event.fingerprint,
                    "t": _epoch(now),
                }
                confirm = emails.EmailRequest(
                    emails.EmailKind.EMAIL_CHANGE_CONFIRM,
                    event.user_id,
                    recipient=event.new_email,
                    suppressed=not event.new_email_free,
                    claims=claims,
                )
                notice = emails.EmailRequest(
                    emails.EmailKind.EMAIL_CHANGE_NOTICE, event.user_id, claims=claims
                )
                await _queue(uow, confirm, now)
                await _queue(uow, notice, now)


def _epoch(at: datetime) -> str:
    """When a link was asked for: it expires counting from then, however late
    its email goes out (a retry, an operator's requeue)."""
    return str(int(at.timestamp()))


async def record_queued(
    uow: ports.UnitOfWork, registration_id: uuid.UUID | None, now: datetime
) -> None:
    """The ``EMAIL_QUEUED`` step of an email's registration, if it has one: for
    an email queued here, or queued again by an operator."""
    if registration_id is not None:
        await uow.progress.record(registration_id, progress.Step.EMAIL_QUEUED, now)


async def _queue(uow: ports.UnitOfWork, request: emails.EmailRequest, now: datetime) -> None:
    await uow.outbox.enqueue(request)
    await record_queued(uow, request.registration_id, now)


def _verification_or_notice(
    event: events.RegistrationRepeated | events.VerificationEmailRequested,
) -> emails.EmailRequest:
    verify = not event.already_verified
    return emails.EmailRequest(
        kind=emails.EmailKind.VERIFY_EMAIL if verify else emails.EmailKind.ACCOUNT_EXISTS,
        user_id=event.user_id,
        registration_id=event.registration_id,
        verification_nonce=event.verification_nonce if verify and not event.suppressed else None,
        suppressed=event.suppressed,
    )
