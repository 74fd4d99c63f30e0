"""Sharing a step's execution and JSON between subscribers of the same document."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any

from api.fanout import NextMessageEncoder
from api.schema import create_schema
from domain import accounts, progress
from tests.unit.fakes import World, world

QUERY = """subscription($t: String!) { registrationEvents(registrationToken: $t) {
  __typename ... on EmailSent { at } } }"""
OTHER_QUERY = """subscription($t: String!) { registrationEvents(registrationToken: $t) {
  __typename } }"""


class OneStepFeed:
    """Gives every watcher the very same step object, as the hub does."""

    def __init__(self, step: progress.RegistrationStep) -> None:
        self.step = step

    async def follow(
        self, registration_id: uuid.UUID, *, after: int | None = None
    ) -> AsyncGenerator[progress.RegistrationStep, None]:
        yield self.step


@dataclass
class Context:
    accounts: accounts.Accounts
    feed: OneStepFeed


async def first_result(query: str, token: str, context: Context) -> Any:
    stream = await create_schema().subscribe(
        query, variable_values={"t": token}, context_value=context
    )
    result = await anext(stream)  # type: ignore[arg-type]
    await stream.aclose()  # type: ignore[union-attr]
    assert result.errors is None, result.errors
    return result.data


async def test_subscribers_of_one_document_share_the_executed_result() -> None:
    w: World = world()
    started = await accounts.register(accounts.Register("ann@example.com", "pass word"), w.accounts)
    step = progress.RegistrationStep(
        7, started.registration_id, progress.Step.EMAIL_SENT, w.clock.now()
    )
    context = Context(w.accounts, OneStepFeed(step))
    token = started.registration_token
    first = await first_result(QUERY, token, context)
    second = await first_result(QUERY, token, context)
    other = await first_result(OTHER_QUERY, token, context)
    assert first == {"registrationEvents": {"__typename": "EmailSent", "at": step.at.isoformat()}}
    assert second is first  # executed once, shared
    assert other is not first and other == {"registrationEvents": {"__typename": "EmailSent"}}


def test_next_messages_share_their_payload_text_and_keep_their_own_ids() -> None:
    encoder = NextMessageEncoder(size=2)
    data = {"registrationEvents": {"__typename": "EmailSent"}}
    one = encoder.encode({"id": "1", "type": "next", "payload": {"data": data}})
    two = encoder.encode({"id": 'b"2', "type": "next", "payload": {"data": data}})
    assert json.loads(one) == {"id": "1", "type": "next", "payload": {"data": data}}
    assert json.loads(two) == {"id": 'b"2', "type": "next", "payload": {"data": data}}
    # Errors are never taken from the shared text.
    errors = {"data": data, "errors": [{"message": "boom"}]}
    three = encoder.encode({"id": "3", "type": "next", "payload": errors})
    assert json.loads(three)["payload"] == errors
    # Other messages are plain JSON.
    assert json.loads(encoder.encode({"type": "connection_ack"})) == {"type": "connection_ack"}


class BrokenFeed:
    """Fails mid-stream with a detail that must not reach the client."""

    async def follow(
        self, registration_id: uuid.UUID, *, after: int | None = None
    ) -> AsyncGenerator[progress.RegistrationStep, None]:
        raise RuntimeError("connection to 10.0.0.7 refused for user herald")
        yield  # pragma: no cover


async def test_a_streamed_result_with_errors_is_still_masked() -> None:
    w: World = world()
    started = await accounts.register(accounts.Register("ann@example.com", "pass word"), w.accounts)
    context = Context(w.accounts, BrokenFeed())  # type: ignore[arg-type]
    stream = await create_schema().subscribe(
        QUERY, variable_values={"t": started.registration_token}, context_value=context
    )
    result = await anext(stream)  # type: ignore[arg-type]
    await stream.aclose()  # type: ignore[union-attr]
    assert result.errors is not None
    messages = [error.message for error in result.errors]
    assert messages == ["Internal server error; the request was not completed."]
