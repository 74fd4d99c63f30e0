"""Register, receive the email, open the link, verify: with real processes and SMTP."""

from __future__ import annotations

import signal
import time

import httpx

from infra import devmail
from tests.e2e.conftest import Herald, ScriptedSink, StartHerald

REGISTER = """
mutation Register($email: String!, $password: String!) {
  register(input: {email: $email, password: $password}) {
    __typename
    ... on RegisterSuccess { registrationToken }
    ... on InvalidInput { message fields { field message } }
    ... on RateLimited { message retryAfterSeconds }
  }
}"""

VERIFY = """
mutation Verify($token: String!) {
  verifyEmail(token: $token) {
    __typename
    ... on VerifyEmailSuccess { user { id email emailVerified } }
    ... on InvalidToken { message }
    ... on ExpiredToken { message }
  }
}"""

RESEND = """
mutation Resend($email: String!) {
  resendVerificationEmail(email: $email) {
    __typename
    ... on ResendVerificationEmailSuccess { registrationToken }
    ... on InvalidInput { message }
    ... on RateLimited { message retryAfterSeconds }
  }
}"""


def link_in(text: str, base_url: str) -> str:
    [link] = [
        line for line in text.splitlines() if line.startswith(f"{base_url}/verify-email?token=")
    ]
    return link


def delivery_row(herald: Herald, email: str) -> tuple[str, int, int | None, str | None]:
    deadline = time.monotonic() + 30
    while True:
        rows = herald.sql(
            "SELECT status, attempts, last_smtp_code, last_error FROM email_deliveries"
            " WHERE recipient = %s ORDER BY created_at DESC",
            email,
        )
        if (rows and rows[0][0] in {"sent", "failed"}) or time.monotonic() > deadline:
            return rows[0]
        time.sleep(0.05)


def test_register_email_link_verify(start_herald: StartHerald, sink: ScriptedSink) -> None:
    herald = start_herald()
    result = herald.graphql(REGISTER, {"email": "Ann@Example.com", "password": "correct horse"})
    assert result["register"]["__typename"] == "RegisterSuccess"
    assert result["register"]["registrationToken"]

    [message] = sink.wait_for(1)
    assert message.recipients == ("Ann@example.com",)
    assert message.subject == "Confirm your email address"
    link = link_in(message.text, herald.base_url)
    assert link in message.html
    [(message_id,)] = herald.sql("SELECT message_id FROM email_deliveries")
    assert message.message_id == message_id
    assert delivery_row(herald, "Ann@example.com")[:2] == ("sent", 1)

    # Opening the link (as a mail scanner would) shows a page and consumes nothing.
    page = httpx.get(link, timeout=10)
    assert page.status_code == 200 and "Confirm my address" in page.text
    assert page.headers["referrer-policy"] == "no-referrer"
    assert herald.sql("SELECT email_verified_at FROM users") == [(None,)]

    token = link.split("token=", 1)[1]
    verified = herald.graphql(VERIFY, {"token": token})["verifyEmail"]
    assert verified["__typename"] == "VerifyEmailSuccess"
    assert verified["user"]["email"] == "Ann@example.com" and verified["user"]["emailVerified"]

    again = herald.graphql(VERIFY, {"token": token})["verifyEmail"]
    assert again["__typename"] == "InvalidToken"


def test_an_existing_address_gets_the_same_answer_and_its_owner_an_email(
    start_herald: StartHerald, sink: ScriptedSink
) -> None:
    herald = start_herald(EMAIL_COOLDOWN_SECONDS=1)
    first = herald.graphql(REGISTER, {"email": "bob@example.com", "password": "correct horse"})
    link = link_in(sink.wait_for(1)[0].text, herald.base_url)
    herald.graphql(VERIFY, {"token": link.split("token=", 1)[1]})
    time.sleep(1.1)
    second = herald.graphql(REGISTER, {"email": "BOB@example.com", "password": "another guess"})
    assert set(first["register"]) == set(second["register"])
    assert second["register"]["__typename"] == "RegisterSuccess"
    # The welcome email of the verification, and the notice of the repeat.
    subjects = sorted(m.subject for m in sink.wait_for(3)[1:])
    assert subjects == ["Welcome to your new account", "You already have an account"]
    [notice] = [m for m in sink.messages if m.subject == "You already have an account"]
    assert notice.recipients == ("bob@example.com",)
    assert herald.sql("SELECT count(*) FROM users") == [(1,)]


def test_resend_sends_a_new_link_that_replaces_the_old_one(
    start_herald: StartHerald, sink: ScriptedSink
) -> None:
    herald = start_herald(EMAIL_COOLDOWN_SECONDS=1)
    herald.graphql(REGISTER, {"email": "cat@example.com", "password": "correct horse"})
    old = link_in(sink.wait_for(1)[0].text, herald.base_url).split("token=", 1)[1]
    limited = herald.graphql(RESEND, {"email": "cat@example.com"})["resendVerificationEmail"]
    assert limited["__typename"] == "RateLimited" and limited["retryAfterSeconds"] >= 1
    time.sleep(1.1)
    resent = herald.graphql(RESEND, {"email": "cat@example.com"})["resendVerificationEmail"]
    assert resent["__typename"] == "ResendVerificationEmailSuccess"
    new = link_in(sink.wait_for(2)[1].text, herald.base_url).split("token=", 1)[1]
    assert herald.graphql(VERIFY, {"token": old})["verifyEmail"]["__typename"] == "InvalidToken"
    assert (
        herald.graphql(VERIFY, {"token": new})["verifyEmail"]["__typename"] == "VerifyEmailSuccess"
    )


def test_a_greylisting_server_gets_the_email_after_a_retry(
    start_herald: StartHerald, sink: ScriptedSink
) -> None:
    sink.script = ["451 4.7.1 Greylisted, try again later"]
    herald = start_herald()
    herald.graphql(REGISTER, {"email": "dan@example.com", "password": "correct horse"})
    [message] = sink.wait_for(1)
    assert message.recipients == ("dan@example.com",)
    status, attempts, code, error = delivery_row(herald, "dan@example.com")
    assert (status, attempts, code) == ("sent", 2, 451)
    assert error is not None and "Greylisted" in error
    assert sink.attempts == 2


def test_a_permanent_refusal_is_not_retried(start_herald: StartHerald, sink: ScriptedSink) -> None:
    sink.script = ["550 5.1.1 No such mailbox", "550 5.1.1 No such mailbox"]
    herald = start_herald()
    herald.graphql(REGISTER, {"email": "eve@example.com", "password": "correct horse"})
    status, attempts, code, error = delivery_row(herald, "eve@example.com")
    assert (status, attempts, code) == ("failed", 1, 550)
    assert error is not None and "No such mailbox" in error
    # Longer than the retry delay (1 s): nothing else reaches the server.
    time.sleep(2.5)
    assert sink.attempts == 1 and sink.messages == []
    assert herald.sql(
        "SELECT status FROM procrastinate_jobs WHERE task_name = 'send_verification_email'"
    ) == [("succeeded",)]
    assert "550" in herald.log("worker")


def test_with_the_queue_disabled_the_worker_sweep_still_sends_the_email(
    start_herald: StartHerald, sink: ScriptedSink
) -> None:
    herald = start_herald(
        JOB_QUEUE_ENABLED="false",
        worker_overrides={
            "JOB_QUEUE_ENABLED": "true",
            "EMAIL_SWEEP_CRON": "* * * * * *",
            "EMAIL_SWEEP_MIN_AGE_SECONDS": "1",
        },
    )
    result = herald.graphql(REGISTER, {"email": "fin@example.com", "password": "correct horse"})
    assert result["register"]["__typename"] == "RegisterSuccess"
    assert "queue disabled" in herald.log("serve")
    [message] = sink.wait_for(1)
    link = link_in(message.text, herald.base_url)
    verified = herald.graphql(VERIFY, {"token": link.split("token=", 1)[1]})["verifyEmail"]
    assert verified["__typename"] == "VerifyEmailSuccess"
    assert delivery_row(herald, "fin@example.com")[:2] == ("sent", 1)


def test_tokens_stay_out_of_the_access_log(start_herald: StartHerald, sink: ScriptedSink) -> None:
    herald = start_herald(LOG_LEVEL="INFO")
    herald.graphql(REGISTER, {"email": "gil@example.com", "password": "correct horse"})
    link = link_in(sink.wait_for(1)[0].text, herald.base_url)
    assert httpx.get(link, timeout=10).status_code == 200
    token = link.split("token=", 1)[1]
    log = herald.log("serve")
    assert '"GET /verify-email HTTP/1.1" 200' in log
    assert token not in log and token not in herald.log("worker")
    assert "correct horse" not in log and "gil@example.com" not in herald.log("worker")


def test_sigterm_lets_the_worker_finish_the_email_it_is_sending(
    start_herald: StartHerald, sink: ScriptedSink
) -> None:
    sink.hold_seconds = 2.0
    herald = start_herald()
    herald.graphql(REGISTER, {"email": "hal@example.com", "password": "correct horse"})
    assert sink.receiving.wait(30)
    worker = herald.processes["worker"]
    worker.send_signal(signal.SIGTERM)  # while the server still holds the message
    assert worker.wait(timeout=30) == 0
    assert [m.recipients for m in sink.messages] == [("hal@example.com",)]
    assert delivery_row(herald, "hal@example.com")[:2] == ("sent", 1)


def test_a_worker_killed_mid_send_loses_nothing(
    start_herald: StartHerald, sink: ScriptedSink
) -> None:
    sink.hold_seconds, sink.hold_first_only = 3.0, True
    herald = start_herald(
        SMTP_TIMEOUT=2,
        EMAIL_SEND_LEASE_SECONDS=4,
        WORKER_STALLED_SECONDS=2,
        EMAIL_SWEEP_CRON="* * * * * *",
    )
    herald.graphql(REGISTER, {"email": "lee@example.com", "password": "correct horse"})
    assert sink.receiving.wait(30)
    killed = herald.processes.pop("worker")
    killed.kill()  # SIGKILL while the server holds the message: no goodbye, no ack
    killed.wait()
    herald.start_worker()
    status, attempts, _, _ = delivery_row(herald, "lee@example.com")
    assert (status, attempts) == ("sent", 2)
    # At-least-once at the SMTP hand-off: the server may have kept the first copy,
    # but every copy is the same message, recognisable by its Message-ID.
    [(message_id,)] = herald.sql("SELECT message_id FROM email_deliveries")
    assert {m.message_id for m in sink.messages} == {message_id}
    assert "retried 1 email jobs" in herald.log("worker")


def test_a_mail_server_down_for_several_retries_gets_the_email_once_it_is_back(
    start_herald: StartHerald,
) -> None:
    port = devmail.free_port()  # nothing listens there yet
    herald = start_herald(worker_overrides={"SMTP_PORT": port})
    herald.graphql(REGISTER, {"email": "eve@example.com", "password": "correct horse"})
    deadline = time.monotonic() + 30
    while True:  # more than two backoff steps go by with the server down
        [(status, attempts, error)] = herald.sql(
            "SELECT status, attempts, last_error FROM email_deliveries"
        )
        if attempts >= 3:
            break
        assert time.monotonic() < deadline, (status, attempts, error)
        time.sleep(0.1)
    assert status in {"queued", "sending"} and "connection" in (error or "")
    back = ScriptedSink()
    controller = devmail.start(back, port=port)
    try:
        [message] = back.wait_for(1)
        assert message.recipients == ("eve@example.com",)
        assert delivery_row(herald, "eve@example.com")[0] == "sent"
        time.sleep(1)
        assert len(back.messages) == 1
    finally:
        controller.stop()


def test_a_request_cannot_point_the_emailed_link_at_another_host(
    start_herald: StartHerald, sink: ScriptedSink
) -> None:
    herald = start_herald()
    response = httpx.post(
        f"{herald.base_url}/graphql",
        json={
            "query": REGISTER,
            "variables": {"email": "fay@example.com", "password": "correct horse"},
        },
        headers={
            "Host": "evil.example",
            "X-Forwarded-Host": "evil.example",
            "Origin": "https://evil.example",
            "Referer": "https://evil.example/signup",
        },
        timeout=30,
    )
    assert response.json()["data"]["register"]["__typename"] == "RegisterSuccess"
    [message] = sink.wait_for(1)
    assert "evil.example" not in message.text and "evil.example" not in message.html
    assert link_in(message.text, herald.base_url)  # PUBLIC_URL, and only it
