"""The account's whole life over real HTTP and WebSocket, with ``herald serve``,
``herald worker`` and an SMTP server: welcome, sign in, ``me``, reset, change of
address, and emails in the account's language."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from tests.e2e import wsclient
from tests.e2e.conftest import Herald, ScriptedSink, StartHerald
from tests.e2e.test_signup import VERIFY

REGISTER = """
mutation Register($email: String!, $password: String!, $locale: String) {
  register(input: {email: $email, password: $password, locale: $locale}) { __typename }
}"""

SIGN_IN = """
mutation SignIn($email: String!, $password: String!) {
  signIn(email: $email, password: $password) {
    __typename
    ... on SignInSuccess { accessToken expiresAt user { email emailVerified } }
    ... on InvalidCredentials { message }
    ... on EmailNotVerified { message }
    ... on RateLimited { retryAfterSeconds }
  }
}"""

ME = "{ me { email emailVerified locale } }"
SIGN_OUT = "mutation { signOut { __typename } }"
REQUEST_RESET = """
mutation Ask($email: String!) {
  requestPasswordReset(email: $email) { __typename ... on RequestPasswordResetSuccess { message } }
}"""
RESET = """
mutation Reset($token: String!, $password: String!) {
  resetPassword(token: $token, newPassword: $password) {
    __typename ... on ResetPasswordSuccess { user { email } } ... on InvalidToken { message }
  }
}"""
REQUEST_CHANGE = """
mutation Change($email: String!, $password: String!) {
  requestEmailChange(newEmail: $email, password: $password) { __typename }
}"""
CONFIRM_CHANGE = """
mutation Confirm($token: String!) {
  confirmEmailChange(token: $token) {
    __typename ... on ConfirmEmailChangeSuccess { user { email emailVerified } }
    ... on InvalidToken { message } ... on AddressUnavailable { message }
  }
}"""


def call(
    herald: Herald, query: str, variables: dict[str, Any] | None = None, token: str | None = None
) -> dict[str, Any]:
    return herald.graphql(query, variables, bearer=token)


def token_in(text: str, herald: Herald, path: str) -> str:
    [link] = [line for line in text.splitlines() if line.startswith(f"{herald.base_url}/{path}?")]
    return link.split("token=", 1)[1]


def one_message(sink: ScriptedSink, count: int, subject: str) -> Any:
    [message] = [m for m in sink.wait_for(count) if m.subject == subject]
    return message


def test_register_verify_welcome_sign_in_reset_and_the_old_session_is_gone(
    start_herald: StartHerald, sink: ScriptedSink
) -> None:
    herald = start_herald(EMAIL_COOLDOWN_SECONDS=1)
    password = "correct horse"
    call(herald, REGISTER, {"email": "ann@example.com", "password": password})
    verify = sink.wait_for(1)[0]
    unverified = call(herald, SIGN_IN, {"email": "ann@example.com", "password": password})
    assert unverified["signIn"]["__typename"] == "EmailNotVerified"
    call(herald, VERIFY, {"token": token_in(verify.text, herald, "verify-email")})
    welcome = one_message(sink, 2, "Welcome to your new account")
    assert welcome.recipients == ("ann@example.com",)

    signed_in = call(herald, SIGN_IN, {"email": "Ann@Example.com", "password": password})
    success = signed_in["signIn"]
    assert success["__typename"] == "SignInSuccess" and success["user"]["emailVerified"]
    session = success["accessToken"]
    assert call(herald, ME, token=session)["me"] == {
        "email": "ann@example.com",
        "emailVerified": True,
        "locale": "en",
    }
    assert call(herald, ME)["me"] is None
    assert call(herald, ME, token="not-a-session")["me"] is None
    # Only the digest is stored.
    [(digest,)] = herald.sql("SELECT token_digest FROM sessions")
    assert session not in digest and len(digest) == 64

    # The same over a WebSocket, authenticated in connection_init.
    async def me_over_websocket() -> Any:
        async with wsclient.session(
            herald.base_url, init_payload={"Authorization": f"Bearer {session}"}
        ) as ws:
            await ws.send({"id": "1", "type": "subscribe", "payload": {"query": ME}})
            return await ws.receive()

    over_ws = asyncio.run(me_over_websocket())
    assert over_ws["payload"]["data"]["me"]["email"] == "ann@example.com", over_ws

    time.sleep(1.1)  # past the address's email cooldown, which registering started
    asked = call(herald, REQUEST_RESET, {"email": "ann@example.com"})["requestPasswordReset"]
    unknown = call(herald, REQUEST_RESET, {"email": "nobody@example.com"})["requestPasswordReset"]
    assert asked == unknown and asked["__typename"] == "RequestPasswordResetSuccess"
    reset = one_message(sink, 3, "Reset your password")
    token = token_in(reset.text, herald, "reset-password")
    page = httpx.get(f"{herald.base_url}/reset-password?token={token}", timeout=10)
    assert page.status_code == 200 and "Choose a new password" in page.text
    assert page.headers["referrer-policy"] == "no-referrer"

    changed = call(herald, RESET, {"token": token, "password": "new battery staple"})
    assert changed["resetPassword"]["__typename"] == "ResetPasswordSuccess"
    again = call(herald, RESET, {"token": token, "password": "third password"})
    assert again["resetPassword"]["__typename"] == "InvalidToken"
    assert call(herald, ME, token=session)["me"] is None  # every session ended
    notice = one_message(sink, 4, "Your password was changed")
    assert notice.recipients == ("ann@example.com",)
    old = call(herald, SIGN_IN, {"email": "ann@example.com", "password": password})
    assert old["signIn"]["__typename"] == "InvalidCredentials"
    new = call(herald, SIGN_IN, {"email": "ann@example.com", "password": "new battery staple"})
    assert new["signIn"]["__typename"] == "SignInSuccess"
    assert call(herald, SIGN_OUT, token=new["signIn"]["accessToken"]) == {
        "signOut": {"__typename": "SignOutSuccess"}
    }
    assert call(herald, ME, token=new["signIn"]["accessToken"])["me"] is None
    # Nothing was ever sent to the unknown address.
    assert all("nobody@example.com" not in m.recipients for m in sink.messages)


def test_a_change_of_address_goes_through_both_emails(
    start_herald: StartHerald, sink: ScriptedSink
) -> None:
    herald = start_herald()
    password = "correct horse"
    call(herald, REGISTER, {"email": "bob@example.com", "password": password, "locale": "de"})
    verify = sink.wait_for(1)[0]
    assert verify.subject == "Bestätigen Sie Ihre E-Mail-Adresse"
    call(herald, VERIFY, {"token": token_in(verify.text, herald, "verify-email")})
    one_message(sink, 2, "Willkommen in Ihrem neuen Konto")
    session = call(herald, SIGN_IN, {"email": "bob@example.com", "password": password})
    access = session["signIn"]["accessToken"]

    refused = call(
        herald, REQUEST_CHANGE, {"email": "robert@example.com", "password": "wrong guess"}, access
    )
    assert refused["requestEmailChange"]["__typename"] == "InvalidCredentials"
    anonymous = call(herald, REQUEST_CHANGE, {"email": "robert@example.com", "password": password})
    assert anonymous["requestEmailChange"]["__typename"] == "NotSignedIn"
    asked = call(
        herald, REQUEST_CHANGE, {"email": "robert@example.com", "password": password}, access
    )
    assert asked["requestEmailChange"]["__typename"] == "RequestEmailChangeSuccess"
    confirm = one_message(sink, 4, "Bestätigen Sie Ihre neue E-Mail-Adresse")
    notice = one_message(sink, 4, "Änderung Ihrer E-Mail-Adresse angefordert")
    assert confirm.recipients == ("robert@example.com",)
    assert notice.recipients == ("bob@example.com",) and "r***@example.com" in notice.text
    assert call(herald, ME, token=access)["me"]["email"] == "bob@example.com"

    token = token_in(confirm.text, herald, "confirm-email-change")
    page = httpx.get(f"{herald.base_url}/confirm-email-change?token={token}", timeout=10)
    assert page.status_code == 200 and "Confirm my new address" in page.text
    moved = call(herald, CONFIRM_CHANGE, {"token": token})["confirmEmailChange"]
    assert moved == {
        "__typename": "ConfirmEmailChangeSuccess",
        "user": {"email": "robert@example.com", "emailVerified": True},
    }
    assert call(herald, CONFIRM_CHANGE, {"token": token})["confirmEmailChange"]["__typename"] == (
        "InvalidToken"
    )
    assert call(herald, ME, token=access)["me"]["email"] == "robert@example.com"
    by_old = call(herald, SIGN_IN, {"email": "bob@example.com", "password": password})
    assert by_old["signIn"]["__typename"] == "InvalidCredentials"
    by_new = call(herald, SIGN_IN, {"email": "robert@example.com", "password": password})
    assert by_new["signIn"]["__typename"] == "SignInSuccess"
