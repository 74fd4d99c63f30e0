"""SMTP delivery with aiosmtplib, translating its errors into transient or permanent failures."""

from __future__ import annotations

import asyncio
import contextlib
import email.charset
import email.header
import email.message
import email.mime.multipart
import email.mime.nonmultipart
import email.policy
import email.utils
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import aiosmtplib

from domain import emails, errors
from infra.settings import SmtpSecurity

T = TypeVar("T")


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
    """The message with the ``email`` package's modern API: used for
    internationalised addresses, which need its SMTPUTF8 handling."""
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


_UTF8_QP = email.charset.Charset("utf-8")
_UTF8_QP.body_encoding = email.charset.QP
_WIRE = email.policy.compat32.clone(linesep="\r\n")


def message_bytes(mail_from: str, outgoing: emails.OutgoingEmail) -> bytes:
    """The same message for ASCII addresses, built with the older API, which
    writes it about three times faster (headers are not parsed back; the
    subject and display name are encoded words, the bodies quoted-printable)."""
    name, address = email.utils.parseaddr(mail_from)
    message = email.mime.multipart.MIMEMultipart("alternative")
    message["From"] = email.utils.formataddr((name, address), charset="utf-8")
    message["To"] = outgoing.recipient
    message["Subject"] = email.header.Header(outgoing.content.subject, "utf-8").encode()
    message["Date"] = email.utils.formatdate(localtime=False)
    message["Message-ID"] = outgoing.message_id
    message["Auto-Submitted"] = "auto-generated"
    for subtype, body in (("plain", outgoing.content.text), ("html", outgoing.content.html)):
        part = email.mime.nonmultipart.MIMENonMultipart("text", subtype)
        part.set_payload(body, _UTF8_QP)
        message.attach(part)
    return message.as_bytes(policy=_WIRE)


class SmtpMailer:
    """Sends over a small pool of open SMTP connections.

    A connection is reused while it works and dropped after any failure; a
    pooled connection that the server closed while idle is replaced once,
    before anything of the message was sent on it.
    """

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
        pool_size: int = 2,
    ) -> None:
        self.host = host
        self.port = port
        self.security = security
        self.mail_from = mail_from
        self.username = username
        self.password = password
        self.timeout = timeout
        self.pool_size = pool_size
        self._idle: list[aiosmtplib.SMTP] = []
        self._slots: asyncio.Semaphore | None = None

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

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[tuple[aiosmtplib.SMTP, bool]]:
        """A connected client, and whether it was reused from the pool."""
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.pool_size)
        async with self._slots:
            reused = bool(self._idle)
            client = self._idle.pop() if reused else self._client()
            if not client.is_connected:
                reused = False
                await client.connect()
            try:
                yield client, reused
            except BaseException:
                client.close()
                raise
            if client.is_connected:
                self._idle.append(client)

    async def _use(self, action: Callable[[aiosmtplib.SMTP], Awaitable[T]]) -> T:
        try:
            async with self._connection() as (client, reused):
                try:
                    return await action(client)
                except aiosmtplib.SMTPServerDisconnected:
                    if not reused:
                        raise
            # The server had closed the idle connection: once more, on a new one.
            async with self._connection() as (client, _):
                return await action(client)
        except Exception as exc:
            raise classify(exc) from exc

    async def rehearse(self) -> None:
        # On a pooled connection like a send, and two round trips like the
        # envelope of one, so that it takes about as long.
        async def exchange(client: aiosmtplib.SMTP) -> None:
            await client.noop()
            await client.rset()

        await self._use(exchange)

    async def send(self, outgoing: emails.OutgoingEmail) -> None:
        sender = email.utils.parseaddr(self.mail_from)[1]

        async def transaction(client: aiosmtplib.SMTP) -> dict[str, Any]:
            if sender.isascii() and outgoing.recipient.isascii():
                content = message_bytes(self.mail_from, outgoing)
                refused, _ = await client.sendmail(sender, [outgoing.recipient], content)
            else:
                message = build_message(self.mail_from, outgoing)
                refused, _ = await client.send_message(message)
            return dict(refused)

        refused = await self._use(transaction)
        if refused:
            code, reason = next(iter(refused.values()))
            raise errors.DeliveryFailure(transient=400 <= code < 500, code=code, reason=reason)

    async def close(self) -> None:
        while self._idle:
            client = self._idle.pop()
            with contextlib.suppress(Exception):
                await client.quit()
