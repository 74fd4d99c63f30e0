"""A local SMTP catcher for ``herald dev`` (aiosmtpd): keeps every message in memory."""

from __future__ import annotations

import email
import email.policy
import socket
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session


@dataclass(frozen=True)
class CaughtMessage:
    recipients: tuple[str, ...]
    message: EmailMessage
    received_at: str

    @property
    def subject(self) -> str:
        return str(self.message["Subject"] or "")

    @property
    def message_id(self) -> str:
        return str(self.message["Message-ID"] or "")

    @property
    def text(self) -> str:
        part = self.message.get_body(preferencelist=("plain",))
        return "" if part is None else str(part.get_content())

    @property
    def html(self) -> str:
        part = self.message.get_body(preferencelist=("html",))
        return "" if part is None else str(part.get_content())


class MailCatcher:
    """An aiosmtpd handler that accepts and keeps every message."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._messages: list[CaughtMessage] = []

    @property
    def messages(self) -> list[CaughtMessage]:
        with self._lock:
            return list(self._messages)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or envelope.content or b""
        data = raw if isinstance(raw, bytes) else raw.encode()
        parsed = email.message_from_bytes(data, policy=email.policy.default)
        caught = CaughtMessage(
            recipients=tuple(envelope.rcpt_tos),
            message=parsed,
            received_at=datetime.now(UTC).isoformat(timespec="seconds"),
        )
        with self._lock:
            self._messages.append(caught)
        return "250 Message accepted for delivery"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def start(handler: Any, *, host: str = "127.0.0.1", port: int | None = None) -> Controller:
    """Start an SMTP server on a thread of its own, on a free port unless one is given."""
    controller = Controller(handler, hostname=host, port=port or free_port(host), ready_timeout=10)
    controller.start()
    return controller
