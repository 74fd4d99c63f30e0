"""Races that only a real database can decide."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import psycopg
import pytest

from domain import accounts, delivery, errors
from infra import bootstrap
from tests import support


def link_token(container: bootstrap.Container, database_url: str) -> str:
    with psycopg.connect(database_url) as conn:
        user_id, email, nonce = conn.execute(
            "SELECT id, email, verification_nonce FROM users"
        ).fetchone()  # type: ignore[misc]
    return container.courier.tokens.sign(
        accounts.VERIFY_EMAIL_PURPOSE, {"u": str(user_id), "e": email, "n": nonce}
    )


async def test_two_concurrent_verifications_with_one_token_succeed_exactly_once(
    container: bootstrap.Container, database_url: str
) -> None:
    await accounts.register(
        accounts.Register("ann@example.com", "correct horse"), container.accounts
    )
    token = link_token(container, database_url)
    for _ in range(3):  # the race is decided by the database, every time
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute("UPDATE users SET email_verified_at = NULL")
        outcomes = await asyncio.gather(
            *(
                accounts.verify_email(accounts.VerifyEmail(token), container.accounts)
                for _ in range(8)
            ),
            return_exceptions=True,
        )
        assert sum(1 for o in outcomes if not isinstance(o, BaseException)) == 1
        assert all(
            isinstance(o, errors.InvalidToken) for o in outcomes if isinstance(o, BaseException)
        )


async def test_concurrent_registrations_of_one_address_make_one_account(
    container: bootstrap.Container, database_url: str
) -> None:
    spellings = ["eve@example.com", "EVE@example.com", "Eve@Example.com", "eve@EXAMPLE.COM"] * 3
    results = await asyncio.gather(
        *(
            accounts.register(accounts.Register(e, "correct horse"), container.accounts)
            for e in spellings
        )
    )
    assert len(results) == len(spellings)
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM users").fetchone() == (1,)
        # One verification email, not twelve: the rest fall in the cooldown.
        sent = "SELECT count(*) FROM email_deliveries WHERE NOT suppressed"
        assert conn.execute(sent).fetchone() == (1,)


async def test_concurrent_resends_for_one_address_send_one_email(
    container: bootstrap.Container, database_url: str
) -> None:
    await accounts.register(
        accounts.Register("fay@example.com", "correct horse"), container.accounts
    )
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("DELETE FROM email_cooldowns")
    outcomes = await asyncio.gather(
        *(
            accounts.resend_verification_email(
                accounts.ResendVerificationEmail("fay@example.com"), container.accounts
            )
            for _ in range(10)
        ),
        return_exceptions=True,
    )
    limited = [o for o in outcomes if isinstance(o, errors.RateLimited)]
    assert len(limited) == 9 and all(0 < o.retry_after_seconds <= 60 for o in limited)
    with psycopg.connect(database_url) as conn:
        sent = "SELECT count(*) FROM email_deliveries WHERE NOT suppressed"
        assert conn.execute(sent).fetchone() == (2,)


async def test_the_cooldown_holds_across_processes(database_url: str) -> None:
    # Two containers stand for two API processes: the limit lives in PostgreSQL.
    first = bootstrap.build(support.settings(database_url))
    second = bootstrap.build(support.settings(database_url))
    try:
        command = accounts.ResendVerificationEmail("gus@example.com")
        await accounts.resend_verification_email(command, first.accounts)
        try:
            await accounts.resend_verification_email(command, second.accounts)
        except errors.RateLimited:
            pass
        else:
            raise AssertionError("the second process ignored the cooldown")
    finally:
        await first.close()
        await second.close()


async def test_a_delivery_claimed_twice_is_sent_once(
    container: bootstrap.Container, database_url: str
) -> None:
    await accounts.register(
        accounts.Register("hal@example.com", "correct horse"), container.accounts
    )
    with psycopg.connect(database_url, autocommit=True) as conn:
        [delivery_id] = conn.execute("SELECT id FROM email_deliveries").fetchone()  # type: ignore[misc]
        conn.execute("UPDATE email_deliveries SET status = 'sent' WHERE id = %s", (delivery_id,))
    outcome = await delivery.deliver(delivery_id, container.courier)
    assert outcome is delivery.Outcome.SKIPPED


async def test_a_non_ascii_address_registers_and_verifies(
    container: bootstrap.Container, database_url: str
) -> None:
    await accounts.register(
        accounts.Register("Élodie@Exemple.fr", "correct horse"), container.accounts
    )
    token = link_token(container, database_url)
    user = (await accounts.verify_email(accounts.VerifyEmail(token), container.accounts)).user
    assert user.email == "Élodie@exemple.fr" and user.email_verified
    # The same address again, in another case: the same account.
    await accounts.register(
        accounts.Register("Élodie@EXEMPLE.FR", "correct horse"), container.accounts
    )
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM users").fetchone() == (1,)


async def test_a_delivery_being_sent_is_leased_until_its_attempt_must_be_over(
    container: bootstrap.Container, database_url: str
) -> None:
    await accounts.register(
        accounts.Register("kim@example.com", "correct horse"), container.accounts
    )
    with psycopg.connect(database_url) as conn:
        [delivery_id] = conn.execute("SELECT id FROM email_deliveries").fetchone()  # type: ignore[misc]
    now = container.courier.clock.now()
    async with container.courier.uow() as uow:
        first = await uow.deliveries.claim(delivery_id, now, lease_seconds=60)
        await uow.commit()
    assert first is not None and first.attempts == 1
    # A second run of the job (a retried stalled job, say) while the first attempt may
    # still be talking to the mail server: told when to come back, sends nothing.
    with pytest.raises(errors.DeliveryLeased) as caught:
        async with container.courier.uow() as uow:
            await uow.deliveries.claim(delivery_id, now, lease_seconds=60)
    assert caught.value.until > now
    # Once the lease is over, the attempt is taken for dead and the delivery retaken.
    later = now + timedelta(seconds=61)
    async with container.courier.uow() as uow:
        second = await uow.deliveries.claim(delivery_id, later, lease_seconds=60)
        await uow.commit()
    assert second is not None and second.attempts == 2


async def test_the_email_budget_holds_across_processes_under_concurrency(database_url: str) -> None:
    # The budget is a window per clock minute: keep the burst inside one.
    if time.time() % 60 > 55:
        await asyncio.sleep(60 - time.time() % 60 + 0.1)
    first = bootstrap.build(support.settings(database_url, EMAILS_PER_MINUTE=5))
    second = bootstrap.build(support.settings(database_url, EMAILS_PER_MINUTE=5))
    try:
        outcomes = await asyncio.gather(
            *(
                accounts.resend_verification_email(
                    accounts.ResendVerificationEmail(f"user{n}@example.com"),
                    (first if n % 2 else second).accounts,
                )
                for n in range(12)
            ),
            return_exceptions=True,
        )
    finally:
        await first.close()
        await second.close()
    limited = [o for o in outcomes if isinstance(o, errors.RateLimited)]
    assert len(limited) == 7 and all(0 < o.retry_after_seconds <= 60 for o in limited)
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM email_deliveries").fetchone() == (5,)


async def test_a_link_used_while_its_send_is_in_flight_shows_sent_then_verified_once(
    container: bootstrap.Container, database_url: str
) -> None:
    started = await accounts.register(
        accounts.Register("ann@example.com", "correct horse"), container.accounts
    )
    with psycopg.connect(database_url) as conn:
        [(delivery_id,)] = conn.execute("SELECT id FROM email_deliveries").fetchall()
    clock = container.courier.clock
    async with container.courier.uow() as uow:
        assert await uow.deliveries.claim(delivery_id, clock.now(), lease_seconds=60)
        await uow.commit()
    # The worker waits for the server's reply; the person opens the link.
    await accounts.verify_email(
        accounts.VerifyEmail(link_token(container, database_url)), container.accounts
    )
    async with container.courier.uow() as uow:
        assert not await uow.deliveries.mark_sent(delivery_id, clock.now())
        assert not await uow.deliveries.mark_retrying(delivery_id, clock.now(), 421, "late")
    with psycopg.connect(database_url) as conn:
        steps = conn.execute(
            "SELECT step FROM registration_events WHERE registration_id = %s ORDER BY id",
            (started.registration_id,),
        ).fetchall()
        status = conn.execute("SELECT status FROM email_deliveries WHERE id = %s", (delivery_id,))
        assert status.fetchone() == ("sent",)
    assert steps == [("email_queued",), ("email_sent",), ("email_verified",)]
