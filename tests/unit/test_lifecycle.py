"""Sign in and out, password reset, welcome email, change of address, and the
pre-registration takeover: use cases against in-memory fakes."""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta

import pytest

from domain import (
    accounts,
    address_change,
    authentication,
    delivery,
    emails,
    errors,
    recovery,
    sessions,
    users,
)
from tests.unit.fakes import World, world

PASSWORD = "correct horse"


@pytest.fixture
def w() -> World:
    return world()


async def send_all(w: World) -> list[emails.OutgoingEmail]:
    """Run every queued delivery through the courier; the messages it sent."""
    before = len(w.mailer.sent)
    for delivery_id, row in list(w.store.deliveries.items()):
        if row["status"] is emails.DeliveryStatus.QUEUED:
            await delivery.deliver(delivery_id, w.courier)
    return w.mailer.sent[before:]


def token_of(message: emails.OutgoingEmail) -> str:
    return str(json.loads(message.content.text)["link"]).split("token=", 1)[1]


def kinds(messages: list[emails.OutgoingEmail]) -> list[str]:
    return sorted(m.content.subject.split(":")[0] for m in messages)


async def verified_account(w: World, email: str = "ann@example.com") -> users.User:
    await accounts.register(accounts.Register(email, PASSWORD), w.accounts)
    [link] = [m for m in await send_all(w) if m.content.subject.startswith("verify_email")]
    verified = await accounts.verify_email(accounts.VerifyEmail(token_of(link)), w.accounts)
    w.clock.advance(61)  # past the address's email cooldown
    return verified.user


async def sign_in(w: World, email: str = "ann@example.com", password: str = PASSWORD) -> str:
    command = authentication.SignIn(email, password, client="192.0.2.1")
    return (await authentication.sign_in(command, w.accounts)).access_token


async def test_verifying_sends_one_welcome_email(w: World) -> None:
    await verified_account(w)
    assert kinds(await send_all(w)) == ["welcome"]
    assert kinds(await send_all(w)) == []


async def test_sign_in_gives_an_opaque_token_whose_digest_alone_is_stored(w: World) -> None:
    user = await verified_account(w)
    token = await sign_in(w, "ANN@example.com")
    [stored] = w.store.sessions.values()
    assert stored.token_digest == sessions.digest(token) and token not in stored.token_digest
    assert stored.expires_at == w.clock.now() + timedelta(seconds=accounts.Policy().session_max_age)
    assert await authentication.current_user(token, w.accounts) == user
    assert await authentication.current_user("forged", w.accounts) is None
    assert await authentication.current_user(None, w.accounts) is None
    await authentication.sign_out(token, w.accounts)
    assert await authentication.current_user(token, w.accounts) is None
    with pytest.raises(errors.NotSignedIn):
        await authentication.sign_out(token, w.accounts)


async def test_a_session_ends_when_it_expires(w: World) -> None:
    await verified_account(w)
    token = await sign_in(w)
    w.clock.advance(accounts.Policy().session_max_age + 1)
    assert await authentication.current_user(token, w.accounts) is None


async def test_unknown_address_and_wrong_password_look_alike_and_cost_the_same(w: World) -> None:
    await verified_account(w)
    for email, password in (("nobody@example.com", PASSWORD), ("ann@example.com", "wrong guess")):
        w.hasher.verified.clear()
        with pytest.raises(errors.InvalidCredentials) as caught:
            await sign_in(w, email, password)
        assert caught.value.message == errors.InvalidCredentials().message
        assert w.hasher.verified == [password]  # one password check either way
    assert w.store.sessions == {}


async def test_an_unverified_account_is_told_only_after_the_password_matched(w: World) -> None:
    await accounts.register(accounts.Register("ann@example.com", PASSWORD), w.accounts)
    with pytest.raises(errors.InvalidCredentials):
        await sign_in(w, password="wrong guess")
    with pytest.raises(errors.EmailNotVerified):
        await sign_in(w)
    assert w.store.sessions == {}


async def test_failed_sign_ins_are_limited_per_address_then_even_the_right_password_waits(
    w: World,
) -> None:
    await verified_account(w)
    for _ in range(accounts.Policy().sign_in_failures_per_account):
        with pytest.raises(errors.InvalidCredentials):
            await sign_in(w, password="wrong guess")
    with pytest.raises(errors.RateLimited) as caught:
        await sign_in(w)
    assert 0 < caught.value.retry_after_seconds <= accounts.Policy().sign_in_window_seconds
    w.clock.advance(accounts.Policy().sign_in_window_seconds)
    assert await sign_in(w)


async def test_failed_sign_ins_are_limited_per_client_across_addresses(w: World) -> None:
    await verified_account(w)
    limit = accounts.Policy().sign_in_failures_per_client
    for n in range(limit):
        with pytest.raises(errors.InvalidCredentials):
            await sign_in(w, f"guess{n}@example.com")
    with pytest.raises(errors.RateLimited):
        await sign_in(w)  # same client
    other = authentication.SignIn("ann@example.com", PASSWORD, client="198.51.100.7")
    assert await authentication.sign_in(other, w.accounts)


async def test_an_outdated_hash_is_upgraded_at_sign_in(w: World) -> None:
    user = await verified_account(w)
    w.store.users[user.id] = dataclasses.replace(user, password_hash="old:" + user.password_hash)
    w.hasher.check = lambda h, p, also=None: _stored()  # type: ignore[method-assign,assignment]
    await sign_in(w)
    assert w.store.users[user.id].password_hash == "hashed:esroh tcerroc"


async def _stored() -> str:
    return "stored"


async def test_a_reset_link_changes_the_password_once_and_ends_every_session(w: World) -> None:
    await verified_account(w)
    await send_all(w)
    first, second = await sign_in(w), await sign_in(w)
    await recovery.request_password_reset(
        recovery.RequestPasswordReset("Ann@Example.com"), w.accounts
    )
    [reset] = await send_all(w)
    assert reset.recipient == "ann@example.com"
    token = token_of(reset)
    with pytest.raises(errors.InvalidInput) as caught:
        await recovery.reset_password(recovery.ResetPassword(token, "short"), w.accounts)
    assert [p.field for p in caught.value.fields] == ["newPassword"]
    await recovery.reset_password(recovery.ResetPassword(token, "new battery staple"), w.accounts)
    assert await authentication.current_user(first, w.accounts) is None
    assert await authentication.current_user(second, w.accounts) is None
    assert kinds(await send_all(w)) == ["password_changed"]
    with pytest.raises(errors.InvalidToken):
        await recovery.reset_password(recovery.ResetPassword(token, "third password"), w.accounts)
    with pytest.raises(errors.InvalidCredentials):
        await sign_in(w)
    assert await sign_in(w, password="new battery staple")


async def test_a_reset_link_dies_with_any_other_change_of_password_and_with_age(w: World) -> None:
    await verified_account(w)
    await send_all(w)
    for _ in range(2):
        await recovery.request_password_reset(
            recovery.RequestPasswordReset("ann@example.com"), w.accounts
        )
        w.clock.advance(61)
    one, two = (token_of(m) for m in await send_all(w))
    await recovery.reset_password(recovery.ResetPassword(two, "new battery staple"), w.accounts)
    with pytest.raises(errors.InvalidToken):
        await recovery.reset_password(recovery.ResetPassword(one, "another one"), w.accounts)
    await recovery.request_password_reset(
        recovery.RequestPasswordReset("ann@example.com"), w.accounts
    )
    [old] = [m for m in await send_all(w) if m.content.subject.startswith("password_reset")]
    w.clock.advance(accounts.Policy().password_reset_max_age + 1)
    with pytest.raises(errors.ExpiredToken):
        await recovery.reset_password(
            recovery.ResetPassword(token_of(old), "another one"), w.accounts
        )


async def test_a_reset_for_an_unknown_address_answers_alike_and_sends_nothing(w: World) -> None:
    await recovery.request_password_reset(
        recovery.RequestPasswordReset("nobody@example.com"), w.accounts
    )
    [row] = w.store.deliveries.values()
    assert (row["kind"], row["suppressed"], row["user_id"]) == (
        emails.EmailKind.PASSWORD_RESET,
        True,
        None,
    )
    assert await send_all(w) == [] and w.mailer.rehearsals == 0
    assert row["status"] is emails.DeliveryStatus.SUPPRESSED
    # The same cooldown as an address with an account.
    with pytest.raises(errors.RateLimited):
        await recovery.request_password_reset(
            recovery.RequestPasswordReset("nobody@example.com"), w.accounts
        )


async def test_a_change_of_address_needs_a_session_and_the_password(w: World) -> None:
    await verified_account(w)
    token = await sign_in(w)

    def change(session: str | None, new: str, password: str) -> address_change.RequestEmailChange:
        return address_change.RequestEmailChange(session, new, password)

    with pytest.raises(errors.NotSignedIn):
        await address_change.request_email_change(
            change(None, "new@example.com", PASSWORD), w.accounts
        )
    with pytest.raises(errors.InvalidCredentials):
        await address_change.request_email_change(
            change(token, "new@example.com", "wrong guess"), w.accounts
        )
    with pytest.raises(errors.InvalidInput) as caught:
        await address_change.request_email_change(
            change(token, "ANN@example.com", PASSWORD), w.accounts
        )
    assert [p.field for p in caught.value.fields] == ["newEmail"]


async def test_a_change_of_address_takes_effect_only_when_the_new_address_confirms(
    w: World,
) -> None:
    user = await verified_account(w)
    await send_all(w)
    token = await sign_in(w)
    await address_change.request_email_change(
        address_change.RequestEmailChange(token, "Ann.New@Example.com", PASSWORD), w.accounts
    )
    assert w.store.users[user.id].email == "ann@example.com"
    sent = await send_all(w)
    [confirm] = [m for m in sent if m.content.subject.startswith("email_change_confirm")]
    [notice] = [m for m in sent if m.content.subject.startswith("email_change_notice")]
    assert confirm.recipient == "Ann.New@example.com" and notice.recipient == "ann@example.com"
    assert json.loads(notice.content.text)["new_email"] == "A***@example.com"
    link = token_of(confirm)
    moved = await address_change.confirm_email_change(
        address_change.ConfirmEmailChange(link), w.accounts
    )
    assert moved.email == "Ann.New@example.com" and moved.email_verified
    with pytest.raises(errors.InvalidToken):
        await address_change.confirm_email_change(
            address_change.ConfirmEmailChange(link), w.accounts
        )
    assert await sign_in(w, "ann.new@example.com")


async def test_the_new_address_must_still_be_free_when_confirmed(w: World) -> None:
    await verified_account(w)
    await send_all(w)
    token = await sign_in(w)
    await address_change.request_email_change(
        address_change.RequestEmailChange(token, "bob@example.com", PASSWORD), w.accounts
    )
    [confirm] = [
        m for m in await send_all(w) if m.content.subject.startswith("email_change_confirm")
    ]
    await verified_account(w, "bob@example.com")
    with pytest.raises(errors.AddressUnavailable):
        await address_change.confirm_email_change(
            address_change.ConfirmEmailChange(token_of(confirm)), w.accounts
        )


async def test_a_change_to_a_taken_address_answers_alike_and_sends_it_nothing(w: World) -> None:
    await verified_account(w, "bob@example.com")
    await verified_account(w)
    await send_all(w)
    token = await sign_in(w)
    await address_change.request_email_change(
        address_change.RequestEmailChange(token, "bob@example.com", PASSWORD), w.accounts
    )
    sent = await send_all(w)
    assert [(m.recipient, m.content.subject) for m in sent] == [
        ("ann@example.com", "email_change_notice:en")
    ]


async def test_registering_an_unverified_address_again_makes_the_owner_choose_a_password(
    w: World,
) -> None:
    # An attacker registers the victim's address first, with a password of theirs.
    await accounts.register(accounts.Register("ann@example.com", "attacker pass"), w.accounts)
    w.clock.advance(61)
    # The owner registers it too, gets the newest link, and opens it.
    await accounts.register(accounts.Register("ann@example.com", PASSWORD), w.accounts)
    link = token_of((await send_all(w))[-1])
    verified = await accounts.verify_email(accounts.VerifyEmail(link), w.accounts)
    assert verified.must_choose_password
    [account] = w.store.users.values()
    assert account.password_hash.startswith("!unusable:") and not account.password_contested
    # Neither password works now: the attacker's is gone.
    for password in ("attacker pass", PASSWORD):
        with pytest.raises(errors.InvalidCredentials):
            await sign_in(w, password=password)
    sent = await send_all(w)
    assert kinds(sent) == ["password_reset", "welcome"]
    [reset] = [m for m in sent if m.content.subject.startswith("password_reset")]
    await recovery.reset_password(recovery.ResetPassword(token_of(reset), PASSWORD), w.accounts)
    assert await sign_in(w)


async def test_the_account_locale_chooses_the_language_of_its_emails(w: World) -> None:
    await accounts.register(accounts.Register("ann@example.com", PASSWORD, "de-AT"), w.accounts)
    [message] = await send_all(w)
    assert message.content.subject == "verify_email:de-AT"
    with pytest.raises(errors.InvalidInput) as caught:
        await accounts.register(
            accounts.Register("bob@example.com", PASSWORD, "../../etc"), w.accounts
        )
    assert [p.field for p in caught.value.fields] == ["locale"]


async def request_change(w: World, session: str, new: str) -> str:
    """Ask to move the signed-in account to ``new``; the confirmation link's token."""
    await address_change.request_email_change(
        address_change.RequestEmailChange(session, new, PASSWORD), w.accounts
    )
    w.clock.advance(61)
    [confirm] = [
        m for m in await send_all(w) if m.content.subject.startswith("email_change_confirm")
    ]
    return token_of(confirm)


async def test_a_change_link_cannot_be_replayed_after_moving_back(w: World) -> None:
    await verified_account(w)
    await send_all(w)
    session = await sign_in(w)
    to_b = await request_change(w, session, "b@example.com")
    await address_change.confirm_email_change(address_change.ConfirmEmailChange(to_b), w.accounts)
    back = await request_change(w, session, "ann@example.com")
    await address_change.confirm_email_change(address_change.ConfirmEmailChange(back), w.accounts)
    # The address is "ann@" again, as when the first link was made: still dead.
    with pytest.raises(errors.InvalidToken):
        await address_change.confirm_email_change(
            address_change.ConfirmEmailChange(to_b), w.accounts
        )


async def test_a_reset_kills_a_pending_change_and_a_change_kills_a_pending_reset(
    w: World,
) -> None:
    await verified_account(w)
    await send_all(w)
    session = await sign_in(w)
    change = await request_change(w, session, "new@example.com")
    await recovery.request_password_reset(
        recovery.RequestPasswordReset("ann@example.com"), w.accounts
    )
    [reset] = [m for m in await send_all(w) if m.content.subject.startswith("password_reset")]
    await recovery.reset_password(
        recovery.ResetPassword(token_of(reset), "new battery"), w.accounts
    )
    with pytest.raises(errors.InvalidToken):
        await address_change.confirm_email_change(
            address_change.ConfirmEmailChange(change), w.accounts
        )
    # And the other way: a reset link mailed to the old address dies with the move.
    w.clock.advance(61)
    await recovery.request_password_reset(
        recovery.RequestPasswordReset("ann@example.com"), w.accounts
    )
    [stale] = [m for m in await send_all(w) if m.content.subject.startswith("password_reset")]
    session = await sign_in(w, password="new battery")
    await address_change.request_email_change(
        address_change.RequestEmailChange(session, "moved@example.com", "new battery"),
        w.accounts,
    )
    [confirm] = [
        m for m in await send_all(w) if m.content.subject.startswith("email_change_confirm")
    ]
    await address_change.confirm_email_change(
        address_change.ConfirmEmailChange(token_of(confirm)), w.accounts
    )
    with pytest.raises(errors.InvalidToken):
        await recovery.reset_password(
            recovery.ResetPassword(token_of(stale), "taken over"), w.accounts
        )


async def test_a_link_expires_counting_from_the_request_not_the_send(w: World) -> None:
    await verified_account(w)
    await send_all(w)
    await recovery.request_password_reset(
        recovery.RequestPasswordReset("ann@example.com"), w.accounts
    )
    # The email goes out late (a long outage, an operator's retry).
    w.clock.advance(accounts.Policy().password_reset_max_age + 1)
    [late] = [m for m in await send_all(w) if m.content.subject.startswith("password_reset")]
    with pytest.raises(errors.ExpiredToken):
        await recovery.reset_password(
            recovery.ResetPassword(token_of(late), "new one!"), w.accounts
        )


async def test_an_address_held_by_an_unverified_account_can_still_be_moved_to(w: World) -> None:
    await accounts.register(accounts.Register("squat@example.com", "squatter pw"), w.accounts)
    await send_all(w)
    w.clock.advance(61)
    user = await verified_account(w)
    await send_all(w)
    session = await sign_in(w)
    link = await request_change(w, session, "squat@example.com")
    moved = await address_change.confirm_email_change(
        address_change.ConfirmEmailChange(link), w.accounts
    )
    assert moved.id == user.id and moved.email == "squat@example.com"
    assert [u.email for u in w.store.users.values()] == ["squat@example.com"]


async def test_a_link_asked_for_with_resend_also_makes_the_owner_choose_a_password(
    w: World,
) -> None:
    await accounts.register(accounts.Register("ann@example.com", "attacker pass"), w.accounts)
    await send_all(w)
    w.clock.advance(61)
    await accounts.resend_verification_email(
        accounts.ResendVerificationEmail("ann@example.com"), w.accounts
    )
    [link] = await send_all(w)
    verified = await accounts.verify_email(accounts.VerifyEmail(token_of(link)), w.accounts)
    assert verified.must_choose_password
    with pytest.raises(errors.InvalidCredentials):
        await sign_in(w, password="attacker pass")


async def test_an_expired_link_says_how_to_get_a_new_one(w: World) -> None:
    await verified_account(w)
    await send_all(w)
    await recovery.request_password_reset(
        recovery.RequestPasswordReset("ann@example.com"), w.accounts
    )
    [reset] = await send_all(w)
    w.clock.advance(accounts.Policy().password_reset_max_age + 1)
    with pytest.raises(errors.ExpiredToken) as caught:
        await recovery.reset_password(
            recovery.ResetPassword(token_of(reset), "new one!"), w.accounts
        )
    assert "requestPasswordReset" in caught.value.message


@pytest.mark.parametrize("already", ["nobody", "unverified", "verified"])
async def test_registering_then_signing_in_cannot_tell_whether_the_address_was_known(
    already: str,
) -> None:
    w = world()
    if already == "unverified":
        await accounts.register(accounts.Register("x@example.com", "owner secret"), w.accounts)
    elif already == "verified":
        await verified_account(w, "x@example.com")
    w.clock.advance(61)
    answers = []
    for password in ("probe one", "probe two"):
        await accounts.register(accounts.Register("x@example.com", password), w.accounts)
        w.clock.advance(61)
    for password in ("probe one", "probe two", "never used"):
        try:
            await sign_in(w, "x@example.com", password)
        except (errors.EmailNotVerified, errors.InvalidCredentials) as answer:
            answers.append(type(answer).__name__)
    # The same for an unknown, an unverified and a verified address.
    assert answers == ["InvalidCredentials", "EmailNotVerified", "InvalidCredentials"]
    # And the owner of a verified account still signs in with their own password.
    if already == "verified":
        assert await sign_in(w, "x@example.com", PASSWORD)


async def test_right_passwords_are_not_counted_as_failures(w: World) -> None:
    await verified_account(w)
    for _ in range(accounts.Policy().sign_in_failures_per_account + 2):
        assert await sign_in(w)
    # Nor does a right password make room for an extra guess later.
    for _ in range(accounts.Policy().sign_in_failures_per_account):
        with pytest.raises(errors.InvalidCredentials):
            await sign_in(w, password="wrong guess")
    with pytest.raises(errors.RateLimited):
        await sign_in(w, password="wrong guess")
