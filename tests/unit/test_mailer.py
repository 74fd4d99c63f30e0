"""Which SMTP failures are worth retrying, and the message Herald builds."""

from __future__ import annotations

import email
import email.message
import email.policy
import uuid

import aiosmtplib
import pytest

from domain import emails
from infra.mailer import build_message, classify, message_bytes


@pytest.mark.parametrize(
    ("exc", "transient", "code"),
    [
        (aiosmtplib.SMTPConnectError("refused"), True, None),
        (aiosmtplib.SMTPServerDisconnected("gone"), True, None),
        (aiosmtplib.SMTPTimeoutError("slow"), True, None),
        (ConnectionRefusedError(111, "refused"), True, None),
        (aiosmtplib.SMTPResponseException(421, "closing"), True, 421),
        (aiosmtplib.SMTPDataError(451, "try later"), True, 451),
        (aiosmtplib.SMTPDataError(552, "too big"), False, 552),
        (aiosmtplib.SMTPSenderRefused(550, "no", "a@b.c"), False, 550),
        (aiosmtplib.SMTPAuthenticationError(535, "bad credentials"), False, 535),
        (aiosmtplib.SMTPNotSupported("STARTTLS not offered"), False, None),
        (
            aiosmtplib.SMTPRecipientsRefused(
                [aiosmtplib.SMTPRecipientRefused(450, "busy", "a@b.c")]
            ),
            True,
            450,
        ),
        (
            aiosmtplib.SMTPRecipientsRefused(
                [aiosmtplib.SMTPRecipientRefused(550, "unknown", "a@b.c")]
            ),
            False,
            550,
        ),
    ],
)
def test_classification(exc: Exception, transient: bool, code: int | None) -> None:
    failure = classify(exc)
    assert (failure.transient, failure.code) == (transient, code)
    assert failure.reason


def test_the_message_is_multipart_alternative_with_the_delivery_message_id() -> None:
    message_id = f"<{uuid.uuid4()}@example.com>"
    outgoing = emails.OutgoingEmail(
        recipient="ann@example.com",
        message_id=message_id,
        content=emails.RenderedEmail(subject="Hi", text="plain\n", html="<p>html</p>"),
    )
    message = build_message("Herald <no-reply@example.com>", outgoing)
    assert message.get_content_type() == "multipart/alternative"
    assert message["Message-ID"] == message_id
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]


def test_the_fast_message_reads_back_as_the_same_email() -> None:
    outgoing = emails.OutgoingEmail(
        recipient="ann@example.com",
        message_id="<7@example.com>",
        content=emails.RenderedEmail(
            subject="Bestätigen Sie Ihre E-Mail-Adresse",
            text="Grüße\nhttps://x.example/verify-email?token=a.b_c-d=" + "x" * 120 + "\n",
            html="<p>Grüße</p>",
        ),
    )
    raw = message_bytes("Hérald <no-reply@example.com>", outgoing)
    assert raw.isascii() and b"\r\n" in raw  # 7-bit on the wire, CRLF lines
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(parsed, email.message.EmailMessage)
    assert parsed["Subject"] == outgoing.content.subject
    assert parsed["From"] == "Hérald <no-reply@example.com>"
    assert (parsed["To"], parsed["Message-ID"]) == ("ann@example.com", "<7@example.com>")
    assert parsed.get_content_type() == "multipart/alternative"
    plain, html = parsed.iter_parts()
    # Lines end in CRLF on the wire, as SMTP wants.
    text = plain.get_content().replace("\r\n", "\n")  # type: ignore[attr-defined]
    assert text == outgoing.content.text
    assert html.get_content() == outgoing.content.html  # type: ignore[attr-defined]
