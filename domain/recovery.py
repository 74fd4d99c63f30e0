"""A forgotten password: a reset link by email, then a new password.

The request is answered the same for every address. The link is signed with
its own salt, expires (an hour by default) and carries a fingerprint of the
password hash it may replace, so it dies after one use or any other change of
password; using it ends every session of the account.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from domain import errors, events, handlers, users
from domain.accounts import (
    PASSWORD_RESET_PURPOSE,
    Accounts,
    address,
    commit_within_budget,
    limit_emails_to,
    read_link,
)


@dataclass(frozen=True)
class RequestPasswordReset:
    email: str


@dataclass(frozen=True)
class ResetPassword:
    token: str
    new_password: str


async def request_password_reset(command: RequestPasswordReset, accounts: Accounts) -> None:
    """Email a reset link if the address has an account; the same answer, and
    the same limits, whether or not it has one."""
    email, problems = address(accounts, command.email)
    if email is None:
        raise errors.InvalidInput(problems, "Check the highlighted fields.")
    now = accounts.clock.now()
    async with accounts.uow() as uow:
        await limit_emails_to(uow, accounts.policy, email, now)
        user = await uow.users.get_by_email(email)
        requested = events.PasswordResetRequested(
            None if user is None else user.id,
            None if user is None else users.fingerprint(user.password_hash),
            None if user is None else user.email,
        )
        await handlers.publish(uow, [requested], now)
        await commit_within_budget(uow, accounts.policy, now)


async def reset_password(command: ResetPassword, accounts: Accounts) -> users.User:
    """Replace the password with the link's token; exactly once per link.

    Raises ``InvalidInput`` for a password that breaks the rules (the link
    stays usable), ``ExpiredToken`` or ``InvalidToken``.
    """
    problems = users.password_problems(command.new_password)
    if problems:
        raise errors.InvalidInput(
            [errors.FieldProblem("newPassword", p.message) for p in problems],
            "Choose another password.",
        )
    max_age = accounts.policy.password_reset_max_age
    payload = read_link(
        accounts,
        PASSWORD_RESET_PURPOSE,
        command.token,
        max_age,
        renew="Ask for a new one with requestPasswordReset.",
    )
    try:
        user_id = uuid.UUID(str(payload["u"]))
        issued_for, sent_to = str(payload["f"]), str(payload["e"])
    except (KeyError, ValueError):
        raise errors.InvalidToken() from None
    async with accounts.uow() as uow:
        user = await uow.users.get(user_id)
    # The link dies with the password it was issued against, and if the
    # account moved away from the mailbox it was sent to.
    if (
        user is None
        or users.fingerprint(user.password_hash) != issued_for
        or user.email.lower() != sent_to.lower()
    ):
        raise errors.InvalidToken()
    new_hash = await accounts.hasher.hash(command.new_password)
    now = accounts.clock.now()
    async with accounts.uow() as uow:
        # Compare-and-set: of two uses of one link, or a use racing another
        # change, only one replaces the hash it was issued against.
        if not await uow.users.replace_password(
            user.id, current_hash=user.password_hash, new_hash=new_hash
        ):
            raise errors.InvalidToken()
        await uow.sessions.revoke_all(user.id)
        await handlers.publish(uow, [events.PasswordChanged(user.id)], now)
        await uow.commit()
    return user
