"""SMTP delivery with aiosmtplib, translating its errors into transient or permanent failures."""

from __future__ import annotations

import email.message
import email.utils
import ssl

import aiosmtplib

from domain import emails, errors
from infra.settings import SmtpSecurity


def _reply(exc: aiosmtplib.SMTPResponseException) -> errors.DeliveryFailure:
    # 4xx asks the sender to try again later; 5xx says retrying will not help.
    return errors.DeliveryFailure(
        transient=400 <= exc.code < 500, code=exc.code, reason=exc.message
    )


def classify(exc: Exception) -> errors.DeliveryFailure:
    """What an aiosmtplib exception means for retrying."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        codes = [r.code for r in exc.recipients]
        reason = "; ".join(r.message for r in exc.recipients) or "recipient refused"
        transient = bool(codes) and all(400 <= c < 500 for c in codes)
        return errors.DeliveryFailure(
            transient=transient, code=codes[0] if codes else None, reason=reason
        )
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
        return errors.DeliveryFailure(
            transient=False, code=exc.code, reason=f"authentication: {exc.message}"
        )
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return _reply(exc)
    if isinstance(exc, aiosmtplib.SMTPNotSupported):
        return errors.DeliveryFailure(transient=False, code=None, reason=f"not supported: {exc}")
    if isinstance(exc, (aiosmtplib.SMTPConnectError, aiosmtplib.SMTPServerDisconnected)):
        return errors.DeliveryFailure(transient=True, code=None, reason=f"connection: {exc}")
    if isinstance(exc, (aiosmtplib.SMTPTimeoutError, TimeoutError)):
        return errors.DeliveryFailure(transient=True, code=None, reason="timed out")
    if isinstance(exc, OSError):
        return errors.DeliveryFailure(transient=True, code=None, reason=f"connection: {exc}")
    return errors.DeliveryFailure(transient=False, code=None, reason=f"{type(exc).__name__}: {exc}")


def build_message(mail_from: str, outgoing: emails.OutgoingEmail) -> email.message.EmailMessage:
    message = email.message.EmailMessage()
    message["From"] = mail_from
    message["To"] = outgoing.recipient
    message["Subject"] = outgoing.content.subject
    message["Date"] = email.utils.formatdate(localtime=False)
    message["Message-ID"] = outgoing.message_id
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(outgoing.content.text)
    message.add_alternative(outgoing.content.html, subtype="html")
    return message


class SmtpMailer:
    def __init__(
        self,
        *,
        host: str,
        port: int,
        security: SmtpSecurity,
        mail_from: str,
        username: str | None = None,
        password: str | None = None,
        timeout: float = 30,
    ) -> None:
        self.host = host
        self.port = port
        self.security = security
        self.mail_from = mail_from
        self.username = username
        self.password = password
        self.timeout = timeout

    def _client(self) -> aiosmtplib.SMTP:
        # STARTTLS is asked for explicitly: with start_tls=None aiosmtplib
        # would silently send in clear to a server that does not offer it.
        return aiosmtplib.SMTP(
            hostname=self.host,
            port=self.port,
            username=self.username,
            password=self.password,
            use_tls=self.security == "tls",
            start_tls=self.security == "starttls",
            tls_context=ssl.create_default_context() if self.security != "none" else None,
            timeout=self.timeout,
        )

    async def rehearse(self) -> None:
        try:
            async with self._client() as client:
                await client.noop()
        except Exception as exc:
            raise classify(exc) from exc

    async def send(self, outgoing: emails.OutgoingEmail) -> None:
        message = build_message(self.mail_from, outgoing)
        try:
            async with self._client() as client:
                refused, _ = await client.send_message(message)
        except Exception as exc:
            raise classify(exc) from exc
        if refused:
            code, reason = next(iter(refused.values()))
            raise errors.DeliveryFailure(transient=400 <= code < 500, code=code, reason=reason)
