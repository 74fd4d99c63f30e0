"""The SMTP mailer against a real aiosmtpd server on loopback: pooled connections."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from domain import emails
from infra import devmail
from infra.mailer import SmtpMailer


class CountingCatcher(devmail.MailCatcher):
    def __init__(self) -> None:
        super().__init__()
        self.greetings = 0

    async def handle_EHLO(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        self.greetings += 1
        session.host_name = hostname
        return responses


@pytest.fixture
def server() -> Iterator[tuple[CountingCatcher, list[Controller]]]:
    catcher = CountingCatcher()
    controllers = [devmail.start(catcher)]
    yield catcher, controllers
    controllers[-1].stop()


def message(n: int) -> emails.OutgoingEmail:
    return emails.OutgoingEmail(
        recipient=f"user{n}@example.com",
        message_id=f"<{uuid.uuid4()}@herald.test>",
        content=emails.RenderedEmail(subject=f"n{n}", text="hello\n", html="<p>hello</p>"),
    )


def mailer(controller: Controller) -> SmtpMailer:
    return SmtpMailer(
        host="127.0.0.1",
        port=controller.port,
        security="none",
        mail_from="Herald <no-reply@herald.test>",
        timeout=5,
        pool_size=2,
    )


async def test_sends_reuse_one_connection(
    server: tuple[CountingCatcher, list[Controller]],
) -> None:
    catcher, [controller] = server
    smtp = mailer(controller)
    try:
        for n in range(5):
            await smtp.send(message(n))
        await smtp.rehearse()
    finally:
        await smtp.close()
    assert [m.subject for m in catcher.messages] == ["n0", "n1", "n2", "n3", "n4"]
    assert catcher.greetings == 1


async def test_a_connection_the_server_dropped_is_replaced(
    server: tuple[CountingCatcher, list[Controller]],
) -> None:
    catcher, controllers = server
    smtp = mailer(controllers[0])
    try:
        await smtp.send(message(1))
        # The server goes away and comes back: the pooled connection is dead.
        controllers[0].stop()
        controllers.append(devmail.start(catcher, port=controllers[0].port))
        await smtp.send(message(2))
    finally:
        await smtp.close()
    assert [m.subject for m in catcher.messages] == ["n1", "n2"]
    assert catcher.greetings == 2
