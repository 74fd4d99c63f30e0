"""Use cases of sign-up: register, resend the verification email, verify the address.

Each takes a command and the ``Accounts`` ports, owns its transaction through
a fresh unit of work, and returns a result or raises a ``DomainError``.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from domain import errors, events, handlers, ports, progress, users

# Token purposes: one salt each, so a token minted for one purpose never
# passes for another.
VERIFY_EMAIL_PURPOSE = "herald.verify-email"
REGISTRATION_PURPOSE = "herald.registration"
PASSWORD_RESET_PURPOSE = "herald.password-reset"  # noqa: S105 (a salt, not a secret)
EMAIL_CHANGE_PURPOSE = "herald.email-change"


@dataclass(frozen=True)
class Policy:
    email_verification_max_age: int = 48 * 3600
    registration_token_max_age: int = 48 * 3600
    # One email about an address per cooldown: keeps resend (and repeated
    # registration of a known address) from being used to flood an inbox.
    email_cooldown_seconds: int = 60
    # At most this many emails about one address an hour, and this many emails
    # in all a minute: the sender's reputation is every user's deliverability.
    hourly_email_cap: int = 5
    emails_per_minute: int = 600
    session_max_age: int = 30 * 24 * 3600
    password_reset_max_age: int = 3600
    email_change_max_age: int = 24 * 3600
    # Failed sign-ins allowed per address, and per client address, in a window.
    sign_in_window_seconds: int = 15 * 60
    sign_in_failures_per_account: int = 10
    sign_in_failures_per_client: int = 100


@dataclass(frozen=True)
class Accounts:
    uow: ports.UnitOfWorkFactory
    hasher: ports.PasswordHasher
    addresses: ports.AddressValidator
    tokens: ports.TokenSigner
    clock: ports.Clock
    policy: Policy


@dataclass(frozen=True)
class Register:
    email: str
    password: str
    locale: str | None = None


@dataclass(frozen=True)
class ResendVerificationEmail:
    email: str


@dataclass(frozen=True)
class VerifyEmail:
    token: str


@dataclass(frozen=True)
class WatchRegistration:
    registration_token: str
    # The cursor of the last step the client saw: a client that reconnects
    # resumes after it instead of receiving the whole history again.
    after: str | None = None


@dataclass(frozen=True)
class RegistrationStarted:
    """What the caller learns: the same for a new and an existing address."""

    registration_id: uuid.UUID
    registration_token: str


def address(
    accounts: Accounts, raw: str, field: str = "email"
) -> tuple[str | None, list[errors.FieldProblem]]:
    """The normalised address, or the problem with it as a field error."""
    try:
        return accounts.addresses.normalize(raw), []
    except errors.InvalidAddress as exc:
        return None, [errors.FieldProblem(field=field, message=exc.message)]


def _cooldown_key(email: str) -> str:
    return f"account-email:{email.lower()}"


def _hourly_key(email: str) -> str:
    return f"account-email-hour:{email.lower()}"


async def commit_within_budget(uow: ports.UnitOfWork, policy: Policy, now: datetime) -> None:
    """Spend one email from the budget that all requests share, then commit;
    past the budget, raise ``RateLimited`` and nothing is queued or created.

    Every request in every process counts on the same row, so it is spent
    last, just before the commit: the row stays locked for the commit alone,
    not for the whole request (which serialised every registration). It
    stays in the request's own transaction: a refusal undoes the request, and
    a request refused by another limit spends nothing.
    """
    wait = await uow.cooldowns.take(
        "emails-per-minute", limit=policy.emails_per_minute, window_seconds=60, now=now
    )
    if wait is not None:
        raise errors.RateLimited(
            wait, f"Herald is sending a lot of email right now; try again in {wait} s."
        )
    await uow.commit()


async def limit_emails_to(uow: ports.UnitOfWork, policy: Policy, email: str, now: datetime) -> None:
    """Spend the address's cooldown and its hourly cap for one email about
    ``email``, or raise ``RateLimited``. Every address, with or without an
    account, is limited alike, so the limits reveal nothing. The global budget
    is spent at commit (``commit_within_budget``)."""
    wait = await uow.cooldowns.acquire(
        _cooldown_key(email), seconds=policy.email_cooldown_seconds, now=now
    )
    if wait is not None:
        raise errors.RateLimited(
            wait, f"An email was sent to this address recently; try again in {wait} s."
        )
    wait = await uow.cooldowns.take(
        _hourly_key(email), limit=policy.hourly_email_cap, window_seconds=3600, now=now
    )
    if wait is not None:
        raise errors.RateLimited(
            wait, f"Too many emails to this address this hour; try again in {wait} s."
        )


def read_link(
    accounts: Accounts, purpose: str, token: str, max_age_seconds: int, *, renew: str
) -> dict[str, Any]:
    """The claims of an emailed link's token, or ``InvalidToken`` /
    ``ExpiredToken`` whose message says how to get a new link (``renew``).

    A link's life counts from when it was asked for (claim ``t``), not from
    when its email went out, which may be much later (an outage, an
    operator's retry)."""
    try:
        payload = accounts.tokens.unsign(purpose, token, max_age_seconds=max_age_seconds)
        if "t" in payload and accounts.clock.now().timestamp() - int(str(payload["t"])) > (
            max_age_seconds
        ):
            raise errors.ExpiredToken()
    except errors.ExpiredToken:
        raise errors.ExpiredToken(f"This link has expired. {renew}") from None
    except ValueError:
        raise errors.InvalidToken() from None
    return payload


def _started(accounts: Accounts, registration_id: uuid.UUID) -> RegistrationStarted:
    token = accounts.tokens.sign(REGISTRATION_PURPOSE, {"r": str(registration_id)})
    return RegistrationStarted(registration_id=registration_id, registration_token=token)


async def register(command: Register, accounts: Accounts) -> RegistrationStarted:
    """Create an account and queue its verification email, in one transaction.

    An address that already has an account gets the same answer, after the same
    hashing work: its owner is emailed (a new verification link, or a notice
    that the account exists), at most once per cooldown, so the response never
    tells a caller whether the address is known. The registration's password
    is remembered so that signing in with it answers as it would for a new
    account (see ``_repeat``).
    """
    email, problems = address(accounts, command.email)
    problems += users.password_problems(command.password)
    locale = command.locale or users.DEFAULT_LOCALE
    problems += users.locale_problems(locale)
    if email is None or problems:
        raise errors.InvalidInput(problems, "Check the highlighted fields.")

    async with accounts.uow() as uow:
        known = await uow.users.get_by_email(email)
    # One hash either way; for a verified address, with its account's salt
    # (see ``User.registration_attempt_hash``).
    like = known.password_hash if known is not None and known.email_verified else None
    password_hash = await accounts.hasher.hash(command.password, like=like)
    registration_id = uuid.uuid4()
    now = accounts.clock.now()
    cooldown = accounts.policy.email_cooldown_seconds
    policy = accounts.policy
    async with accounts.uow() as uow:
        user = users.User.new(email=email, password_hash=password_hash, now=now, locale=locale)
        happened: list[events.Event] = []
        added = await uow.users.add(user)
        wait = await uow.cooldowns.acquire(_cooldown_key(email), seconds=cooldown, now=now)
        over_cap = await uow.cooldowns.take(
            _hourly_key(email), limit=policy.hourly_email_cap, window_seconds=3600, now=now
        )
        if added:
            # A new account always gets its email, whatever the limits say.
            happened.append(
                events.UserRegistered(user.id, registration_id, user.verification_nonce)
            )
        else:
            existing = await uow.users.get_by_email(email)
            suppressed = wait is not None or over_cap is not None
            happened.append(
                await _repeat(uow, existing, registration_id, password_hash, suppressed=suppressed)
            )
        await handlers.publish(uow, happened, now)
        await commit_within_budget(uow, policy, now)
    return _started(accounts, registration_id)


async def _repeat(
    uow: ports.UnitOfWork,
    user: users.User | None,
    registration_id: uuid.UUID,
    password_hash: str,
    *,
    suppressed: bool,
) -> events.Event:
    if user is None:  # deleted since the insert found its address taken
        return events.VerificationEmailRequested(None, registration_id, False, None, True)
    nonce = user.verification_nonce
    # An unverified account takes this registration's password, contested:
    # whoever registered first may not own the address, so whoever verifies
    # it must choose a password anew. A verified one keeps it aside.
    await uow.users.remember_registration(user.id, password_hash)
    if not user.email_verified and not suppressed:
        nonce = await uow.users.bump_verification_nonce(user.id)
    return events.RegistrationRepeated(
        user.id, registration_id, user.email_verified, nonce, suppressed
    )


async def resend_verification_email(
    command: ResendVerificationEmail, accounts: Accounts
) -> RegistrationStarted:
    """Send a fresh verification link, if the address has an unverified account.

    Unknown, unverified and verified addresses get the same answer and the same
    cooldown, so neither the response nor ``RateLimited`` reveals an account.
    """
    email, problems = address(accounts, command.email)
    if email is None:
        raise errors.InvalidInput(problems, "Check the highlighted fields.")
    registration_id = uuid.uuid4()
    now = accounts.clock.now()
    async with accounts.uow() as uow:
        await limit_emails_to(uow, accounts.policy, email, now)
        user = await uow.users.get_by_email(email)
        if user is None:
            # Nothing to send, but the same steps to watch as for a known address.
            requested = events.VerificationEmailRequested(None, registration_id, False, None, True)
        else:
            nonce = user.verification_nonce
            if not user.email_verified:
                # Anyone may ask for a link to an address: nothing says the
                # asker chose the account's password (see ``_repeat``).
                await uow.users.contest_password(user.id)
                nonce = await uow.users.bump_verification_nonce(user.id)
            requested = events.VerificationEmailRequested(
                user.id, registration_id, user.email_verified, nonce
            )
        await handlers.publish(uow, [requested], now)
        await commit_within_budget(uow, accounts.policy, now)
    return _started(accounts, registration_id)


async def watch_token_for_message(message_id: str, accounts: Accounts) -> str | None:
    """A registration token for the registration that sent this message.

    For ``herald dev``'s mailbox only, which shows each caught message's
    registration live: whoever reads the mailbox there owns every address.
    """
    async with accounts.uow() as uow:
        registration_id = await uow.deliveries.registration_of(message_id)
    if registration_id is None:
        return None
    return _started(accounts, registration_id).registration_token


async def watch_registration(
    command: WatchRegistration, accounts: Accounts, feed: ports.RegistrationFeed
) -> AsyncGenerator[progress.RegistrationStep, None]:
    """The steps of one registration, replayed then live, ending after verification.

    The registration token is the only key: it authorizes watching the one
    registration it was issued for. Raises ``InvalidToken`` or ``ExpiredToken``
    before anything is watched.
    """
    payload = accounts.tokens.unsign(
        REGISTRATION_PURPOSE,
        command.registration_token,
        max_age_seconds=accounts.policy.registration_token_max_age,
    )
    try:
        registration_id = uuid.UUID(str(payload["r"]))
    except (KeyError, ValueError):
        raise errors.InvalidToken() from None
    after = None
    if command.after is not None:
        try:
            after = int(command.after)
        except ValueError:
            raise errors.InvalidInput(
                [errors.FieldProblem("after", "not the cursor of a step")],
                "Pass the cursor of the last step received as after.",
            ) from None
    # The feed's own iterator, not a wrapper: a step crosses one generator
    # fewer on its way to each of possibly many watchers.
    return feed.follow(registration_id, after=after)


@dataclass(frozen=True)
class Verified:
    user: users.User
    # The password was contested (see ``User.password_contested``): it no
    # longer works, and a reset link is on its way to the verified address.
    must_choose_password: bool = False


async def verify_email(command: VerifyEmail, accounts: Accounts) -> Verified:
    """Consume a verification link: exactly once, and only the newest one.

    If someone else also registered the address before it was verified, the
    password may be theirs (account pre-hijacking): it is replaced by one that
    nothing matches, and the verified owner is sent a link to choose their own.
    """
    payload = read_link(
        accounts,
        VERIFY_EMAIL_PURPOSE,
        command.token,
        accounts.policy.email_verification_max_age,
        renew="Ask for a new one with resendVerificationEmail.",
    )
    try:
        user_id = uuid.UUID(str(payload["u"]))
        email = str(payload["e"])
        nonce = int(payload["n"])
    except (KeyError, TypeError, ValueError):
        raise errors.InvalidToken() from None
    now = accounts.clock.now()
    async with accounts.uow() as uow:
        user = await uow.users.mark_verified(user_id, email, nonce, now)
        if user is None:
            raise errors.InvalidToken()
        happened: list[events.Event] = [events.EmailVerified(user.id, now, nonce)]
        if user.password_contested:
            unusable = users.unusable_password()
            await uow.users.replace_password(
                user.id, current_hash=user.password_hash, new_hash=unusable
            )
            happened.append(
                events.PasswordResetRequested(user.id, users.fingerprint(unusable), user.email)
            )
        await handlers.publish(uow, happened, now)
        await uow.commit()
    return Verified(user, must_choose_password=user.password_contested)
