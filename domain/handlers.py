"""Event handlers, run inside the unit of work's transaction before it commits.

Queueing the email here, not after commit, is what makes registration and its
email one atomic fact: both commit or neither does.
"""

from __future__ import annotations

from collections.abc import Iterable

from domain import emails, events, ports


async def publish(uow: ports.UnitOfWork, happened: Iterable[events.Event]) -> None:
    for event in happened:
        match event:
            case events.UserRegistered():
                await uow.outbox.enqueue(
                    emails.EmailRequest(
                        kind=emails.EmailKind.VERIFY_EMAIL,
                        user_id=event.user_id,
                        registration_id=event.registration_id,
                        verification_nonce=event.verification_nonce,
                    )
                )
            case events.RegistrationRepeated() | events.VerificationEmailRequested():
                await uow.outbox.enqueue(_verification_or_notice(event))
            case events.EmailVerified():
                pass  # nothing to send yet; the welcome email hangs off this event


def _verification_or_notice(
    event: events.RegistrationRepeated | events.VerificationEmailRequested,
) -> emails.EmailRequest:
    if event.already_verified:
        return emails.EmailRequest(
            kind=emails.EmailKind.ACCOUNT_EXISTS,
            user_id=event.user_id,
            registration_id=event.registration_id,
        )
    return emails.EmailRequest(
        kind=emails.EmailKind.VERIFY_EMAIL,
        user_id=event.user_id,
        registration_id=event.registration_id,
        verification_nonce=event.verification_nonce,
    )
