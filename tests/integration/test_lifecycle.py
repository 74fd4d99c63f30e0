"""Sessions, reset links and changes of address on real PostgreSQL, under concurrency."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import time

import psycopg

from domain import (
    accounts,
    address_change,
    authentication,
    errors,
    ports,
    recovery,
    users,
)
from infra import bootstrap
from tests.integration.test_concurrency import link_token

PASSWORD = "correct horse"


async def verified(container: bootstrap.Container, database_url: str, email: str) -> None:
    await accounts.register(accounts.Register(email, PASSWORD), container.accounts)
    with psycopg.connect(database_url) as conn:
        conn.execute("UPDATE users SET email_verified_at = now() WHERE lower(email) = %s", (email,))


def reset_token(container: bootstrap.Container, database_url: str, email: str) -> str:
    with psycopg.connect(database_url) as conn:
        user_id, password_hash = conn.execute(
            "SELECT id, password_hash FROM users WHERE email = %s", (email,)
        ).fetchone()  # type: ignore[misc]
    claims = {"u": str(user_id), "f": users.fingerprint(password_hash), "e": email}
    return container.courier.tokens.sign(
        accounts.PASSWORD_RESET_PURPOSE, {**claims, "t": str(int(time.time()))}
    )


async def test_one_reset_link_used_concurrently_changes_the_password_once_and_ends_sessions(
    container: bootstrap.Container, database_url: str
) -> None:
    await verified(container, database_url, "ann@example.com")
    sessions = [
        (
            await authentication.sign_in(
                authentication.SignIn("ann@example.com", PASSWORD), container.accounts
            )
        ).access_token
        for _ in range(3)
    ]
    assert await authentication.current_user(sessions[0], container.accounts) is not None
    token = reset_token(container, database_url, "ann@example.com")
    outcomes = await asyncio.gather(
        *(
            recovery.reset_password(
                recovery.ResetPassword(token, f"new password {n}"), container.accounts
            )
            for n in range(6)
        ),
        return_exceptions=True,
    )
    winners = [n for n, o in enumerate(outcomes) if not isinstance(o, BaseException)]
    assert len(winners) == 1, outcomes
    assert all(isinstance(o, errors.InvalidToken) for o in outcomes if isinstance(o, Exception))
    for session in sessions:
        assert await authentication.current_user(session, container.accounts) is None
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM sessions").fetchone() == (0,)
        changed = conn.execute(
            "SELECT count(*) FROM email_deliveries WHERE kind = 'password_changed'"
        ).fetchone()
    assert changed == (1,)
    signed_in = await authentication.sign_in(
        authentication.SignIn("ann@example.com", f"new password {winners[0]}"),
        container.accounts,
    )
    assert signed_in.user.email == "ann@example.com"


class CountingHasher:
    """The real hasher, counting the password checks that actually ran."""

    def __init__(self, hasher: ports.PasswordHasher) -> None:
        self.hasher = hasher
        self.checks = 0

    async def hash(self, password: str, *, like: str | None = None) -> str:
        return await self.hasher.hash(password, like=like)

    async def check(
        self, password_hash: str | None, password: str, *, also: str | None = None
    ) -> str | None:
        self.checks += 1
        return await self.hasher.check(password_hash, password, also=also)

    def needs_rehash(self, password_hash: str) -> bool:
        return self.hasher.needs_rehash(password_hash)


async def test_concurrent_failed_sign_ins_never_exceed_the_limit(
    container: bootstrap.Container, database_url: str
) -> None:
    await verified(container, database_url, "ann@example.com")
    limit = container.accounts.policy.sign_in_failures_per_account
    counting = CountingHasher(container.accounts.hasher)
    service = dataclasses.replace(container.accounts, hasher=counting)
    attempts = [
        authentication.sign_in(
            authentication.SignIn("ann@example.com", "wrong guess", client=f"10.0.0.{n}"),
            service,
        )
        for n in range(limit * 3)
    ]
    outcomes = await asyncio.gather(*attempts, return_exceptions=True)
    assert all(isinstance(o, errors.InvalidCredentials | errors.RateLimited) for o in outcomes)
    # A burst gets no more guesses than the limit: each is counted before it runs.
    assert counting.checks == limit
    assert sum(isinstance(o, errors.InvalidCredentials) for o in outcomes) == limit
    with psycopg.connect(database_url) as conn:
        # The address's counter stops at the limit (one row per client besides).
        assert conn.execute("SELECT max(count) FROM email_windows").fetchone() == (limit,)
    # Every failure was counted, across clients: the right password now waits too.
    try:
        await authentication.sign_in(
            authentication.SignIn("ann@example.com", PASSWORD, client="10.9.9.9"),
            container.accounts,
        )
    except errors.RateLimited as limited:
        assert limited.retry_after_seconds > 0
    else:
        raise AssertionError("the right password went through after the limit")


async def test_a_change_of_address_loses_to_a_registration_of_that_address(
    container: bootstrap.Container, database_url: str
) -> None:
    await verified(container, database_url, "ann@example.com")
    with psycopg.connect(database_url) as conn:
        [(user_id, nonce, password_hash)] = conn.execute(
            "SELECT id, verification_nonce, password_hash FROM users"
        ).fetchall()
    claims = {"u": str(user_id), "old": "ann@example.com", "new": "Taken@example.com"}
    token = container.courier.tokens.sign(
        accounts.EMAIL_CHANGE_PURPOSE,
        {
            **claims,
            "n": str(nonce),
            "f": users.fingerprint(password_hash),
            "t": str(int(time.time())),
        },
    )
    # Registered and verified meanwhile (an unverified holder would give way).
    await verified(container, database_url, "taken@example.com")
    try:
        await address_change.confirm_email_change(
            address_change.ConfirmEmailChange(token), container.accounts
        )
    except errors.AddressUnavailable:
        pass
    else:
        raise AssertionError("the account moved to an address another account has")
    with psycopg.connect(database_url) as conn:
        assert sorted(conn.execute("SELECT email FROM users").fetchall()) == [
            ("ann@example.com",),
            ("taken@example.com",),
        ]


async def test_a_concurrent_verification_sends_one_welcome(
    container: bootstrap.Container, database_url: str
) -> None:
    await accounts.register(accounts.Register("ann@example.com", PASSWORD), container.accounts)
    token = link_token(container, database_url)
    await asyncio.gather(
        *(accounts.verify_email(accounts.VerifyEmail(token), container.accounts) for _ in range(6)),
        return_exceptions=True,
    )
    with psycopg.connect(database_url) as conn:
        assert conn.execute(
            "SELECT count(*) FROM email_deliveries WHERE kind = 'welcome'"
        ).fetchone() == (1,)


async def test_a_sign_in_racing_a_reset_leaves_no_session_behind(
    container: bootstrap.Container, database_url: str
) -> None:
    await verified(container, database_url, "ann@example.com")
    passwords = [PASSWORD, "second password"]
    for n in range(6):  # the interleaving is the database's to decide, each time
        old, new = passwords[n % 2], passwords[(n + 1) % 2]
        token = reset_token(container, database_url, "ann@example.com")
        outcomes = await asyncio.gather(
            *(
                authentication.sign_in(
                    authentication.SignIn("ann@example.com", old), container.accounts
                )
                for _ in range(4)
            ),
            recovery.reset_password(recovery.ResetPassword(token, new), container.accounts),
            return_exceptions=True,
        )
        assert not isinstance(outcomes[-1], BaseException), outcomes[-1]
        # Every session the old password started is gone, whenever it started.
        with psycopg.connect(database_url) as conn:
            assert conn.execute("SELECT count(*) FROM sessions").fetchone() == (0,), outcomes


async def test_registering_a_verified_address_then_signing_in_answers_as_for_a_new_one(
    container: bootstrap.Container, database_url: str
) -> None:
    await verified(container, database_url, "known@example.com")
    answers = {}
    for address in ("known@example.com", "fresh@example.com"):
        await accounts.register(accounts.Register(address, "probe password"), container.accounts)
        try:
            await authentication.sign_in(
                authentication.SignIn(address, "probe password"), container.accounts
            )
        except (errors.EmailNotVerified, errors.InvalidCredentials) as answer:
            answers[address] = type(answer).__name__
    assert answers == {
        "known@example.com": "EmailNotVerified",
        "fresh@example.com": "EmailNotVerified",
    }
    # The owner's own password still works.
    owner = await authentication.sign_in(
        authentication.SignIn("known@example.com", PASSWORD), container.accounts
    )
    assert owner.user.email == "known@example.com"


async def test_right_passwords_give_their_count_back(
    container: bootstrap.Container, database_url: str
) -> None:
    await verified(container, database_url, "ann@example.com")
    limit = container.accounts.policy.sign_in_failures_per_account
    for _ in range(limit + 2):
        await authentication.sign_in(
            authentication.SignIn("ann@example.com", PASSWORD, client="10.1.1.1"),
            container.accounts,
        )
    keys = [
        hashlib.sha256(k.encode()).hexdigest()
        for k in ("sign-in-failures:ann@example.com", "sign-in-failures-from:10.1.1.1")
    ]
    with psycopg.connect(database_url) as conn:
        counts = conn.execute(
            "SELECT count FROM email_windows WHERE key = ANY(%s)", (keys,)
        ).fetchall()
    assert counts == [(0,), (0,)]  # the address's and the client's
