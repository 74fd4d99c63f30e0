"""Signing in and out, and who a bearer token belongs to.

A session is an opaque random token; only its SHA-256 is stored. Failed
sign-ins are limited per address and per client, and an unknown address costs
the same hashing work as a known one, so neither the answer nor its timing
says whether an account exists.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from domain import errors, ports, sessions, users
from domain.accounts import Accounts, Policy, address


@dataclass(frozen=True)
class SignIn:
    email: str
    password: str
    # The client's network address, for the per-client limit; None when unknown.
    client: str | None = None


@dataclass(frozen=True)
class SignedIn:
    access_token: str
    expires_at: datetime
    user: users.User


def _failure_keys(email: str, client: str | None) -> list[tuple[str, str]]:
    keys = [("account", f"sign-in-failures:{email.lower()}")]
    if client:
        keys.append(("client", f"sign-in-failures-from:{client}"))
    return keys


def _limit(policy: Policy, which: str) -> int:
    if which == "account":
        return policy.sign_in_failures_per_account
    return policy.sign_in_failures_per_client


async def _spend(
    uow: ports.UnitOfWork, policy: Policy, email: str, client: str | None, now: datetime
) -> None:
    for which, key in _failure_keys(email, client):
        wait = await uow.cooldowns.take(
            key, limit=_limit(policy, which), window_seconds=policy.sign_in_window_seconds, now=now
        )
        if wait is not None:
            raise errors.RateLimited(wait, f"Too many failed sign-ins; try again in {wait} s.")


async def _give_back(
    uow: ports.UnitOfWork, policy: Policy, email: str, client: str | None, now: datetime
) -> None:
    for _, key in _failure_keys(email, client):
        await uow.cooldowns.give_back(key, window_seconds=policy.sign_in_window_seconds, now=now)


async def spend_attempt(accounts: Accounts, email: str, client: str | None, now: datetime) -> None:
    """Count a password check against the address and the client before it
    runs, or raise ``RateLimited`` once either had too many lately: counted
    after the check, a burst of concurrent guesses would all get through."""
    async with accounts.uow() as uow:
        await _spend(uow, accounts.policy, email, client, now)
        await uow.commit()


async def give_back_attempt(
    accounts: Accounts, email: str, client: str | None, now: datetime
) -> None:
    """The check succeeded: it does not count as a failure."""
    async with accounts.uow() as uow:
        await _give_back(uow, accounts.policy, email, client, now)
        await uow.commit()


async def sign_in(command: SignIn, accounts: Accounts) -> SignedIn:
    """A new session for the right address and password of a verified account.

    Raises ``InvalidCredentials`` (the same for an unknown address and a wrong
    password), ``EmailNotVerified`` (only after the password matched) or
    ``RateLimited``.
    """
    policy = accounts.policy
    email, _ = address(accounts, command.email)
    lookup = email or command.email.strip()[:320]
    now = accounts.clock.now()
    async with accounts.uow() as uow:
        await _spend(uow, policy, lookup, command.client, now)
        user = None if email is None else await uow.users.get_by_email(email)
        await uow.commit()  # counted before the check runs (see ``spend_attempt``)
    password = command.password[: users.PASSWORD_MAX_LENGTH * 4]
    attempt = user.registration_attempt_hash if user is not None and user.email_verified else None
    matched = await accounts.hasher.check(
        None if user is None else user.password_hash, password, also=attempt
    )
    if user is None or matched is None:
        raise errors.InvalidCredentials()
    # The password of a registration that made no account (the address was
    # verified already) answers as that of a new, unverified account would:
    # registering then signing in cannot tell whether an address was known.
    if matched == "also" or not user.email_verified:
        await give_back_attempt(accounts, lookup, command.client, now)
        raise errors.EmailNotVerified()
    new_hash = None
    if accounts.hasher.needs_rehash(user.password_hash):
        new_hash = await accounts.hasher.hash(password)
    token = sessions.new_token()
    session = sessions.Session.start(user.id, token, now, policy.session_max_age)
    async with accounts.uow() as uow:
        # A right password is not a failure; undone with the session if the
        # password changed meanwhile.
        await _give_back(uow, policy, lookup, command.client, now)
        current = user.password_hash
        # Lost to a concurrent change of password: the old hash stays, and is
        # upgraded at a later sign-in.
        if new_hash is not None and await uow.users.replace_password(
            user.id, current_hash=current, new_hash=new_hash
        ):
            current = new_hash
        # The password may have been reset since it was checked: a session
        # started with the old one must not outlive the reset.
        if not await uow.sessions.add(session, password_hash=current):
            raise errors.InvalidCredentials()
        await uow.commit()
    return SignedIn(access_token=token, expires_at=session.expires_at, user=user)


async def current_user(access_token: str | None, accounts: Accounts) -> users.User | None:
    """The account an unexpired session token belongs to; None for any other token."""
    if not access_token:
        return None
    async with accounts.uow() as uow:
        user = await uow.sessions.user_of(sessions.digest(access_token), accounts.clock.now())
        await uow.commit()
    return user


async def sign_out(access_token: str | None, accounts: Accounts) -> None:
    """End the session of this token; ``NotSignedIn`` when it has none."""
    if not access_token:
        raise errors.NotSignedIn()
    async with accounts.uow() as uow:
        revoked = await uow.sessions.revoke(sessions.digest(access_token))
        await uow.commit()
    if not revoked:
        raise errors.NotSignedIn()
