"""Use cases of sign-up, against in-memory fakes of the ports."""

from __future__ import annotations

import json
import uuid

import pytest

from domain import accounts, delivery, emails, errors
from tests.unit.fakes import World, world


@pytest.fixture
def w() -> World:
    return world()


def deliveries(w: World, kind: emails.EmailKind | None = None) -> list[dict[str, object]]:
    return [d for d in w.store.deliveries.values() if kind is None or d["kind"] is kind]


async def register(
    w: World, email: str = "ann@example.com", password: str = "correct horse"
) -> accounts.RegistrationStarted:
    return await accounts.register(accounts.Register(email=email, password=password), w.accounts)


async def emailed_link_token(w: World) -> str:
    """Run the queued deliveries through the courier and return the last link's token."""
    for delivery_id, row in list(w.store.deliveries.items()):
        if row["status"] is emails.DeliveryStatus.QUEUED:
            await delivery.deliver(delivery_id, w.courier, last_attempt=False)
    context = json.loads(w.mailer.sent[-1].content.text)
    return str(context["link"]).split("token=", 1)[1]


async def test_register_creates_the_account_and_queues_its_verification_email(w: World) -> None:
    started = await register(w, "Ann@Example.COM")
    [user] = w.store.users.values()
    assert user.email == "Ann@example.com"
    assert user.password_hash == "hashed:esroh tcerroc"
    assert not user.email_verified
    [queued] = deliveries(w)
    assert queued["kind"] is emails.EmailKind.VERIFY_EMAIL
    assert queued["user_id"] == user.id
    assert queued["registration_id"] == started.registration_id


async def test_register_reports_every_invalid_field_and_changes_nothing(w: World) -> None:
    with pytest.raises(errors.InvalidInput) as caught:
        await register(w, "not-an-address", "short")
    assert {p.field for p in caught.value.fields} == {"email", "password"}
    assert w.store.users == {} and w.store.deliveries == {}
    assert w.hasher.hashed == []


@pytest.mark.parametrize(
    ("password", "expected"),
    [("1234567", "at least 8"), ("x" * 257, "at most 256"), (" " * 9, "only spaces")],
)
async def test_password_rules_are_explained(w: World, password: str, expected: str) -> None:
    with pytest.raises(errors.InvalidInput) as caught:
        await register(w, password=password)
    [problem] = caught.value.fields
    assert problem.field == "password" and expected in problem.message


async def test_password_limits_are_inclusive(w: World) -> None:
    await register(w, "a@example.com", "x" * 8)
    await register(w, "b@example.com", "y" * 256)
    assert len(w.store.users) == 2


async def test_registering_a_known_unverified_address_answers_alike_and_sends_a_new_link(
    w: World,
) -> None:
    first = await register(w, "ann@example.com", "first password")
    w.clock.advance(61)
    second = await register(w, "ANN@example.com", "other password")
    [user] = w.store.users.values()
    # Nothing about the account changed but its links; the answer has the same shape.
    assert user.password_hash == "hashed:drowssap tsrif"
    assert type(first) is type(second) and first.registration_id != second.registration_id
    # The same hashing work was done, so the answer takes about as long.
    assert w.hasher.hashed == ["first password", "other password"]
    verifications = deliveries(w, emails.EmailKind.VERIFY_EMAIL)
    assert [d["verification_nonce"] for d in verifications] == [1, 2]


async def test_registering_a_verified_address_emails_the_owner_a_notice(w: World) -> None:
    await register(w)
    await accounts.verify_email(accounts.VerifyEmail(await emailed_link_token(w)), w.accounts)
    w.clock.advance(61)
    await register(w, password="attacker guess")
    [notice] = deliveries(w, emails.EmailKind.ACCOUNT_EXISTS)
    assert notice["status"] is emails.DeliveryStatus.QUEUED
    [user] = w.store.users.values()
    assert user.email_verified


async def test_repeated_registration_within_the_cooldown_sends_nothing_more(w: World) -> None:
    await register(w)
    await register(w)
    await register(w)
    assert len(deliveries(w)) == 1


async def test_verify_email_consumes_the_newest_link_once(w: World) -> None:
    await register(w)
    token = await emailed_link_token(w)
    user = await accounts.verify_email(accounts.VerifyEmail(token), w.accounts)
    assert user.email_verified
    with pytest.raises(errors.InvalidToken):
        await accounts.verify_email(accounts.VerifyEmail(token), w.accounts)


async def test_a_newer_link_replaces_the_older_one(w: World) -> None:
    await register(w)
    old = await emailed_link_token(w)
    w.clock.advance(61)
    await accounts.resend_verification_email(
        accounts.ResendVerificationEmail("ann@example.com"), w.accounts
    )
    new = await emailed_link_token(w)
    with pytest.raises(errors.InvalidToken):
        await accounts.verify_email(accounts.VerifyEmail(old), w.accounts)
    assert (await accounts.verify_email(accounts.VerifyEmail(new), w.accounts)).email_verified


async def test_an_old_link_is_expired_not_invalid(w: World) -> None:
    await register(w)
    token = await emailed_link_token(w)
    w.clock.advance(accounts.Policy().email_verification_max_age + 1)
    with pytest.raises(errors.ExpiredToken) as caught:
        await accounts.verify_email(accounts.VerifyEmail(token), w.accounts)
    assert "resendVerificationEmail" in caught.value.message


@pytest.mark.parametrize(
    "token",
    [
        "garbage",
        f"{accounts.REGISTRATION_PURPOSE}|0|{{}}",
        accounts.VERIFY_EMAIL_PURPOSE + '|9e9|{"u": "not-a-uuid", "e": "a@b.c", "n": 1}',
        accounts.VERIFY_EMAIL_PURPOSE + '|9e9|{"e": "a@b.c"}',
    ],
)
async def test_malformed_or_wrong_purpose_tokens_are_invalid(w: World, token: str) -> None:
    with pytest.raises(errors.InvalidToken):
        await accounts.verify_email(accounts.VerifyEmail(token), w.accounts)


async def test_a_token_for_another_address_is_invalid(w: World) -> None:
    await register(w)
    [user] = w.store.users.values()
    forged = w.signer.sign(
        accounts.VERIFY_EMAIL_PURPOSE, {"u": str(user.id), "e": "mallory@example.com", "n": 1}
    )
    with pytest.raises(errors.InvalidToken):
        await accounts.verify_email(accounts.VerifyEmail(forged), w.accounts)


async def test_resend_answers_alike_for_unknown_unverified_and_verified_addresses(w: World) -> None:
    await register(w, "unverified@example.com")
    await register(w, "verified@example.com")
    verified = next(u for u in w.store.users.values() if u.email.startswith("verified"))
    token = w.signer.sign(
        accounts.VERIFY_EMAIL_PURPOSE, {"u": str(verified.id), "e": verified.email, "n": 1}
    )
    await accounts.verify_email(accounts.VerifyEmail(token), w.accounts)
    w.clock.advance(61)
    before = len(w.store.deliveries)
    results = [
        await accounts.resend_verification_email(
            accounts.ResendVerificationEmail(address), w.accounts
        )
        for address in ("nobody@example.com", "unverified@example.com", "verified@example.com")
    ]
    assert {type(r) for r in results} == {accounts.RegistrationStarted}
    new = list(w.store.deliveries.values())[before:]
    assert sorted(d["kind"] for d in new) == [
        emails.EmailKind.ACCOUNT_EXISTS,
        emails.EmailKind.VERIFY_EMAIL,
    ]


async def test_resend_is_rate_limited_per_address_even_when_unknown(w: World) -> None:
    command = accounts.ResendVerificationEmail("nobody@example.com")
    await accounts.resend_verification_email(command, w.accounts)
    w.clock.advance(15)
    with pytest.raises(errors.RateLimited) as caught:
        await accounts.resend_verification_email(command, w.accounts)
    assert caught.value.retry_after_seconds == 45
    w.clock.advance(45)
    await accounts.resend_verification_email(command, w.accounts)


async def test_resend_rejects_an_invalid_address(w: World) -> None:
    with pytest.raises(errors.InvalidInput) as caught:
        await accounts.resend_verification_email(
            accounts.ResendVerificationEmail("nope"), w.accounts
        )
    assert [p.field for p in caught.value.fields] == ["email"]


async def test_sweep_queues_accounts_that_never_had_a_verification_email(w: World) -> None:
    await register(w, "queued@example.com")
    await register(w, "lost@example.com")
    lost = next(u for u in w.store.users.values() if u.email.startswith("lost"))
    # The delivery of the second registration never made it (queue down).
    for key, row in list(w.store.deliveries.items()):
        if row["user_id"] == lost.id:
            del w.store.deliveries[key]
    assert await accounts.requeue_missing_verification_emails(w.accounts) == 0  # too recent
    w.clock.advance(600)
    assert await accounts.requeue_missing_verification_emails(w.accounts) == 1
    assert await accounts.requeue_missing_verification_emails(w.accounts) == 0
    [requeued] = [d for d in w.store.deliveries.values() if d["user_id"] == lost.id]
    assert requeued["verification_nonce"] == 2


async def test_registration_token_identifies_the_registration(w: World) -> None:
    started = await register(w)
    payload = w.signer.unsign(
        accounts.REGISTRATION_PURPOSE, started.registration_token, max_age_seconds=60
    )
    assert uuid.UUID(payload["r"]) == started.registration_id
