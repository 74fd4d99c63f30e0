"""Use cases of sign-up, against in-memory fakes of the ports."""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import AsyncGenerator

import pytest

from domain import accounts, delivery, emails, errors, progress
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
            await delivery.deliver(delivery_id, w.courier)
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
    # The unverified account takes the latest password, contested (nobody has
    # shown they own the address yet); the answer has the same shape.
    assert user.password_hash == "hashed:drowssap rehto" and user.password_contested
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
    assert [d["suppressed"] for d in deliveries(w)] == [False, True, True]
    await emailed_link_token(w)
    assert len(w.mailer.sent) == 1


async def test_verify_email_consumes_the_newest_link_once(w: World) -> None:
    await register(w)
    token = await emailed_link_token(w)
    verified = await accounts.verify_email(accounts.VerifyEmail(token), w.accounts)
    assert verified.user.email_verified and not verified.must_choose_password
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
    assert (await accounts.verify_email(accounts.VerifyEmail(new), w.accounts)).user.email_verified


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
    # The unknown address gets a delivery that sends nothing, so the same
    # work is done and the same steps can be watched.
    assert [(d["kind"], d["suppressed"], d["user_id"] is None) for d in new] == [
        (emails.EmailKind.VERIFY_EMAIL, True, True),
        (emails.EmailKind.VERIFY_EMAIL, False, False),
        (emails.EmailKind.ACCOUNT_EXISTS, False, False),
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


async def test_registration_token_identifies_the_registration(w: World) -> None:
    started = await register(w)
    payload = w.signer.unsign(
        accounts.REGISTRATION_PURPOSE, started.registration_token, max_age_seconds=60
    )
    assert uuid.UUID(payload["r"]) == started.registration_id


def steps_of(w: World, registration_id: uuid.UUID) -> list[progress.Step]:
    return [s.step for s in w.store.steps if s.registration_id == registration_id]


async def run_jobs(w: World) -> None:
    for delivery_id, row in list(w.store.deliveries.items()):
        if row["status"] is emails.DeliveryStatus.QUEUED:
            await delivery.deliver(delivery_id, w.courier)


async def test_a_watcher_sees_the_same_steps_for_new_known_and_cooling_down_addresses(
    w: World,
) -> None:
    new = await register(w, "ann@example.com")
    await run_jobs(w)
    known_unverified = await register(w, "ANN@example.com")  # also inside the cooldown
    w.clock.advance(61)
    known = await register(w, "ann@example.com")
    unknown = await accounts.resend_verification_email(
        accounts.ResendVerificationEmail("nobody@example.com"), w.accounts
    )
    await run_jobs(w)
    queued_sent = [progress.Step.EMAIL_QUEUED, progress.Step.EMAIL_SENT]
    for started in (new, known_unverified, known, unknown):
        assert steps_of(w, started.registration_id) == queued_sent
    assert len(w.mailer.sent) == 2  # the first link, and the one after the cooldown


async def test_verification_is_announced_only_to_the_registration_whose_link_was_used(
    w: World,
) -> None:
    first = await register(w)
    w.clock.advance(61)
    second = await register(w)  # someone else typing the same address
    token = await emailed_link_token(w)  # the newest link: the second registration's
    await accounts.verify_email(accounts.VerifyEmail(token), w.accounts)
    assert steps_of(w, second.registration_id)[-1] is progress.Step.EMAIL_VERIFIED
    assert progress.Step.EMAIL_VERIFIED not in steps_of(w, first.registration_id)


class ListFeed:
    def __init__(self, steps: list[progress.RegistrationStep]) -> None:
        self.steps = steps
        self.followed: list[uuid.UUID] = []
        self.after: int | None = None

    async def follow(
        self, registration_id: uuid.UUID, *, after: int | None = None
    ) -> AsyncGenerator[progress.RegistrationStep, None]:
        self.followed.append(registration_id)
        self.after = after
        for step in self.steps:
            if step.registration_id == registration_id and (after is None or step.id > after):
                yield step
                if step.final:
                    return


async def test_watching_follows_only_the_registration_its_token_names(w: World) -> None:
    other = await register(w, "bob@example.com")
    started = await register(w)
    feed = ListFeed(w.store.steps)
    steps = await accounts.watch_registration(
        accounts.WatchRegistration(started.registration_token), w.accounts, feed
    )
    seen = [step async for step in steps]
    # Ending after EmailVerified is the feed's part (tested end to end).
    assert feed.followed == [started.registration_id]
    assert other.registration_id not in feed.followed
    assert {s.registration_id for s in seen} == {started.registration_id}
    assert [s.step for s in seen] == [progress.Step.EMAIL_QUEUED]


async def test_watching_can_resume_after_a_cursor(w: World) -> None:
    started = await register(w)
    await emailed_link_token(w)  # queued, then sent
    feed = ListFeed(w.store.steps)
    [queued, sent] = [s for s in w.store.steps if s.registration_id == started.registration_id]
    steps = await accounts.watch_registration(
        accounts.WatchRegistration(started.registration_token, after=str(queued.id)),
        w.accounts,
        feed,
    )
    assert [s async for s in steps] == [sent] and feed.after == queued.id
    with pytest.raises(errors.InvalidInput) as caught:
        await accounts.watch_registration(
            accounts.WatchRegistration(started.registration_token, after="abc"), w.accounts, feed
        )
    assert [p.field for p in caught.value.fields] == ["after"]


@pytest.mark.parametrize(
    "token",
    [
        "nonsense",
        f'{accounts.VERIFY_EMAIL_PURPOSE}|9e9|{{"r": "x"}}',
        f"{accounts.REGISTRATION_PURPOSE}|9e9|{{}}",
    ],
)
async def test_watching_with_a_bad_token_is_refused(w: World, token: str) -> None:
    with pytest.raises(errors.InvalidToken):
        await accounts.watch_registration(
            accounts.WatchRegistration(token), w.accounts, ListFeed([])
        )


async def test_watching_with_an_old_token_is_expired(w: World) -> None:
    started = await register(w)
    w.clock.advance(accounts.Policy().registration_token_max_age + 1)
    with pytest.raises(errors.ExpiredToken):
        await accounts.watch_registration(
            accounts.WatchRegistration(started.registration_token), w.accounts, ListFeed([])
        )


async def test_the_dev_mailbox_can_watch_the_registration_of_a_message(w: World) -> None:
    started = await register(w)
    [delivery_id] = w.store.deliveries
    token = await accounts.watch_token_for_message(f"<{delivery_id}@test>", w.accounts)
    assert token is not None
    payload = w.signer.unsign(accounts.REGISTRATION_PURPOSE, token, max_age_seconds=60)
    assert payload["r"] == str(started.registration_id)
    assert await accounts.watch_token_for_message("<unknown@test>", w.accounts) is None


async def test_past_the_hourly_cap_resend_is_limited_and_register_sends_nothing(w: World) -> None:
    await register(w)
    for _ in range(4):  # the registration's own email and four resends: the cap of five
        w.clock.advance(61)
        await accounts.resend_verification_email(
            accounts.ResendVerificationEmail("ann@example.com"), w.accounts
        )
    w.clock.advance(61)
    with pytest.raises(errors.RateLimited) as caught:
        await accounts.resend_verification_email(
            accounts.ResendVerificationEmail("ann@example.com"), w.accounts
        )
    assert "this hour" in caught.value.message and caught.value.retry_after_seconds <= 3600
    await register(w)  # same answer, nothing sent
    assert [d["suppressed"] for d in deliveries(w)] == [False] * 5 + [True]


async def test_past_the_global_budget_nothing_is_created_or_queued() -> None:
    w = world()
    limited = dataclasses.replace(w.accounts, policy=accounts.Policy(emails_per_minute=2))
    for address in ("a@example.com", "b@example.com"):
        await accounts.register(accounts.Register(address, "pass word"), limited)
    with pytest.raises(errors.RateLimited) as caught:
        await accounts.register(accounts.Register("c@example.com", "pass word"), limited)
    assert 0 < caught.value.retry_after_seconds <= 60
    assert len(w.store.users) == 2 and len(w.store.deliveries) == 2
    w.clock.advance(60)
    await accounts.register(accounts.Register("c@example.com", "pass word"), limited)
    assert len(w.store.users) == 3
