"""Moving an account to another address: asked for by its signed-in owner with
the current password, confirmed through a link sent to the new address.

Nothing changes until the link is used; the current address is told at once.
The link carries both addresses, so it dies once the account has moved (or
moved elsewhere), and the new address must still be free when it is used.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from domain import errors, events, handlers, users
from domain.accounts import (
    EMAIL_CHANGE_PURPOSE,
    Accounts,
    address,
    commit_within_budget,
    limit_emails_to,
    read_link,
)
from domain.authentication import current_user, give_back_attempt, spend_attempt


@dataclass(frozen=True)
class RequestEmailChange:
    access_token: str | None
    new_email: str
    password: str
    client: str | None = None


@dataclass(frozen=True)
class ConfirmEmailChange:
    token: str


async def request_email_change(command: RequestEmailChange, accounts: Accounts) -> None:
    """Send the confirmation link to the new address and a notice to the current one.

    Raises ``NotSignedIn``, ``InvalidCredentials`` (wrong password),
    ``InvalidInput`` or ``RateLimited``. An address another account has gets
    the same answer, and no link.
    """
    user = await current_user(command.access_token, accounts)
    if user is None:
        raise errors.NotSignedIn()
    new_email, problems = address(accounts, command.new_email, field="newEmail")
    if new_email is not None and new_email.lower() == user.email.lower():
        problems = [errors.FieldProblem("newEmail", "This is already the account's address.")]
    if new_email is None or problems:
        raise errors.InvalidInput(problems, "Check the highlighted fields.")
    now = accounts.clock.now()
    # A stolen session must not make guessing the password any cheaper.
    await spend_attempt(accounts, user.email, command.client, now)
    if await accounts.hasher.check(user.password_hash, command.password) != "stored":
        raise errors.InvalidCredentials()
    await give_back_attempt(accounts, user.email, command.client, now)
    async with accounts.uow() as uow:
        await limit_emails_to(uow, accounts.policy, new_email, now)
        taken = await uow.users.get_by_email(new_email)
        # An address held by an account nobody verified is not taken: whoever
        # confirms the link owns the mailbox (see ``change_email``).
        free = taken is None or not taken.email_verified
        requested = events.EmailChangeRequested(
            user.id,
            user.email,
            new_email,
            free,
            verification_nonce=user.verification_nonce,
            fingerprint=users.fingerprint(user.password_hash),
        )
        await handlers.publish(uow, [requested], now)
        await commit_within_budget(uow, accounts.policy, now)


async def confirm_email_change(command: ConfirmEmailChange, accounts: Accounts) -> users.User:
    """Move the account to the confirmed address; raises ``InvalidToken``,
    ``ExpiredToken`` or ``AddressUnavailable``."""
    max_age = accounts.policy.email_change_max_age
    payload = read_link(
        accounts,
        EMAIL_CHANGE_PURPOSE,
        command.token,
        max_age,
        renew="Ask for the change again with requestEmailChange.",
    )
    now = accounts.clock.now()
    try:
        user_id = uuid.UUID(str(payload["u"]))
        current, new = str(payload["old"]), str(payload["new"])
        nonce, issued_for = int(str(payload["n"])), str(payload["f"])
    except (KeyError, ValueError):
        raise errors.InvalidToken() from None
    async with accounts.uow() as uow:
        user = await uow.users.get(user_id)
        if user is None or users.fingerprint(user.password_hash) != issued_for:
            raise errors.InvalidToken()
        moved = await uow.users.change_email(
            user_id,
            current=current,
            new=new,
            nonce=nonce,
            password_hash=user.password_hash,
            at=now,
        )
        if moved is None:
            raise errors.InvalidToken()
        await uow.commit()
    return moved
