"""Watching a registration live: real ``herald serve`` and ``herald worker``
processes, a real SMTP sink and real WebSocket clients in both protocols."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime

import httpx
import pytest
import websockets

from domain import accounts, progress
from infra import bootstrap
from infra.tokens import TokenSigner
from tests import support
from tests.e2e.conftest import Herald, ScriptedSink, StartHerald
from tests.e2e.test_signup import REGISTER, VERIFY, delivery_row, link_in
from tests.e2e.wsclient import LEGACY_WS, StalledReader, SubscriptionError, session


def register(herald: Herald, email: str) -> str:
    result = herald.graphql(REGISTER, {"email": email, "password": "correct horse"})
    return str(result["register"]["registrationToken"])


def verify_from_sink(herald: Herald, sink: ScriptedSink, count: int = 1) -> None:
    link = link_in(sink.wait_for(count)[count - 1].text, herald.base_url)
    result = herald.graphql(VERIFY, {"token": link.split("token=", 1)[1]})
    assert result["verifyEmail"]["__typename"] == "VerifyEmailSuccess"


async def test_every_step_arrives_live_and_the_stream_completes_after_verification(
    start_herald: StartHerald, sink: ScriptedSink
) -> None:
    herald = start_herald(worker=False)
    token = register(herald, "ann@example.com")
    async with session(herald.base_url) as ws:
        events = ws.events(await ws.subscribe(token))
        queued = await anext(events)
        assert queued["__typename"] == "EmailQueued"
        herald.start_worker()  # the email is sent by another process
        sent = await anext(events)
        assert sent["__typename"] == "EmailSent"
        verify_from_sink(herald, sink)
        verified = await anext(events)
        assert verified["__typename"] == "EmailVerified"
        stamps = [datetime.fromisoformat(e["at"]) for e in (queued, sent, verified)]
        assert stamps == sorted(stamps)
        with pytest.raises(StopAsyncIteration):  # "complete" after EmailVerified
            await anext(events)


async def test_a_late_subscriber_gets_the_steps_so_far_in_order(
    start_herald: StartHerald, sink: ScriptedSink
) -> None:
    herald = start_herald()
    token = register(herald, "bob@example.com")
    sink.wait_for(1)
    # Subscribe only once both steps are recorded: they must come from the replay.
    assert delivery_row(herald, "bob@example.com")[0] == "sent"
    async with session(herald.base_url) as ws:
        assert await ws.collect(await ws.subscribe(token), 2) == ["EmailQueued", "EmailSent"]


async def test_the_legacy_graphql_ws_protocol_works_too(
    start_herald: StartHerald, sink: ScriptedSink
) -> None:
    herald = start_herald()
    token = register(herald, "cy@example.com")
    async with session(herald.base_url, LEGACY_WS) as ws:
        operation = await ws.subscribe(token)
        assert await ws.collect(operation, 2) == ["EmailQueued", "EmailSent"]
        verify_from_sink(herald, sink)
        assert await ws.collect(operation, 1) == ["EmailVerified"]


async def test_a_retry_is_announced_with_its_time(
    start_herald: StartHerald, sink: ScriptedSink
) -> None:
    sink.script = ["451 4.7.1 Greylisted, try again later"]
    herald = start_herald()
    token = register(herald, "dee@example.com")
    async with session(herald.base_url) as ws:
        events = ws.events(await ws.subscribe(token))
        assert (await anext(events))["__typename"] == "EmailQueued"
        failed = await anext(events)
        assert failed["__typename"] == "EmailDeliveryFailed"
        assert failed["willRetry"] is True and failed["reason"] == "451 reply"
        assert datetime.fromisoformat(failed["retryAt"]) > datetime.fromisoformat(failed["at"])
        assert (await anext(events))["__typename"] == "EmailSent"


async def test_a_known_address_shows_the_same_steps_as_a_new_one(
    start_herald: StartHerald, sink: ScriptedSink
) -> None:
    herald = start_herald()
    tokens = [register(herald, "eve@example.com") for _ in range(3)]  # 2nd and 3rd: cooldown
    async with session(herald.base_url) as ws:
        for token in tokens:
            assert await ws.collect(await ws.subscribe(token), 2) == ["EmailQueued", "EmailSent"]
    assert len(sink.messages) == 1


async def test_a_dropped_listen_connection_loses_no_step(
    start_herald: StartHerald, sink: ScriptedSink
) -> None:
    herald = start_herald()
    token = register(herald, "fay@example.com")
    async with session(herald.base_url) as ws:
        events = ws.events(await ws.subscribe(token))
        assert [(await anext(events))["__typename"] for _ in range(2)] == [
            "EmailQueued",
            "EmailSent",
        ]
        killed = herald.sql(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE query LIKE 'LISTEN herald_registration_events%%'"
        )
        assert killed == [(True,)]
        # Verified while the API may still be reconnecting: read back, not missed.
        verify_from_sink(herald, sink)
        assert (await anext(events))["__typename"] == "EmailVerified"
    assert "registration listener lost its connection" in herald.log("serve")


async def test_a_step_from_the_worker_reaches_subscribers_on_two_api_processes(
    start_herald: StartHerald, sink: ScriptedSink
) -> None:
    first = start_herald(worker=False)
    second = start_herald(worker=False)
    token = register(first, "gus@example.com")
    async with session(first.base_url) as a, session(second.base_url) as b:
        on_a = a.events(await a.subscribe(token))
        on_b = b.events(await b.subscribe(token))
        assert (
            (await anext(on_a))["__typename"] == (await anext(on_b))["__typename"] == "EmailQueued"
        )
        first.start_worker()
        assert (await anext(on_a))["__typename"] == (await anext(on_b))["__typename"] == "EmailSent"


async def test_a_forged_token_is_refused_with_a_clear_error(start_herald: StartHerald) -> None:
    herald = start_herald(worker=False)
    forged = TokenSigner(["x" * 40]).sign(accounts.REGISTRATION_PURPOSE, {"r": str(uuid.uuid4())})
    async with session(herald.base_url) as ws:
        for token in (forged, "not-a-token"):
            with pytest.raises(SubscriptionError) as caught:
                await ws.collect(await ws.subscribe(token), 1)
            assert caught.value.code == "INVALID_TOKEN"
            assert "registrationToken" in caught.value.message


async def test_an_expired_token_is_refused_with_a_clear_error(start_herald: StartHerald) -> None:
    herald = start_herald(worker=False, REGISTRATION_TOKEN_MAX_AGE=1)
    token = register(herald, "hal@example.com")
    await asyncio.sleep(2.1)
    async with session(herald.base_url) as ws:
        with pytest.raises(SubscriptionError) as caught:
            await ws.collect(await ws.subscribe(token), 1)
        assert caught.value.code == "EXPIRED_TOKEN"


async def test_a_subscriber_that_falls_behind_is_cut_off_and_others_are_not(
    start_herald: StartHerald, database_url: str
) -> None:
    herald = start_herald(worker=False, SUBSCRIPTION_QUEUE_SIZE=8, WS_KEEPALIVE_SECONDS=120)
    token = register(herald, "ivy@example.com")
    registration_id = uuid.UUID(
        TokenSigner([support.SECRET]).unsign(
            accounts.REGISTRATION_PURPOSE, token, max_age_seconds=60
        )["r"]
    )
    steps = 3000
    slow = StalledReader(herald.base_url)
    try:
        first = await asyncio.to_thread(slow.subscribe, token)
        assert first["payload"]["data"]["registrationEvents"]["__typename"] == "EmailQueued"
        async with session(herald.base_url) as fast:
            fast_events = fast.events(await fast.subscribe(token))
            assert (await anext(fast_events))["__typename"] == "EmailQueued"
            # Many steps at once (about 6 MB of messages), through Herald's own code.
            container = bootstrap.build(support.settings(database_url))
            try:
                async with container.courier.uow() as uow:
                    for _ in range(steps):
                        await uow.progress.record(
                            registration_id,
                            progress.Step.EMAIL_FAILED,
                            container.courier.clock.now(),
                            will_retry=True,
                            reason="451 reply " + "x" * 2000,
                        )
                    await uow.commit()
            finally:
                await container.close()
            received = [(await anext(fast_events))["__typename"] for _ in range(steps)]
            assert received == ["EmailDeliveryFailed"] * steps
        # The stalled one catches up on what was already in flight, then learns
        # that it was cut off: the server did not keep the rest for it.
        delivered, last = await asyncio.to_thread(slow.read_to_the_end)
        assert delivered < steps
        assert last["type"] == "next", last
        [error] = last["payload"]["errors"]
        assert error["extensions"]["code"] == "TOO_SLOW"
    finally:
        slow.close()
    assert httpx.get(f"{herald.base_url}/healthz", timeout=10).status_code == 200


async def test_websocket_limits_from_configuration(start_herald: StartHerald) -> None:
    herald = start_herald(
        worker=False,
        WS_MAX_SUBSCRIPTIONS=2,
        WS_CONNECTION_INIT_TIMEOUT=1,
        ALLOWED_ORIGINS="https://app.example.com",
    )
    token = register(herald, "jo@example.com")
    # A third subscription on one connection is refused; the first two go on.
    async with session(herald.base_url) as ws:
        first, second = await ws.subscribe(token), await ws.subscribe(token)
        third = await ws.subscribe(token)
        replies = {}
        for _ in range(3):
            message = await ws.receive(timeout=10)
            replies[message["id"]] = message
        assert replies[third]["type"] == "error"
        assert replies[third]["payload"][0]["message"] == "Subscription limit reached"
        for operation in (first, second):
            event = replies[operation]["payload"]["data"]["registrationEvents"]
            assert event["__typename"] == "EmailQueued"
    # A connection that never says connection_init is closed.
    async with session(herald.base_url, init=False) as idle:
        with pytest.raises(websockets.ConnectionClosed) as caught:
            await idle.receive(timeout=10)
        assert caught.value.rcvd is not None and caught.value.rcvd.code == 4408
    # A browser page from an unlisted origin cannot open one; a listed one can.
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with session(herald.base_url, origin="https://evil.example.net"):
            pass
    assert refused.value.response.status_code == 403
    async with session(herald.base_url, origin="https://app.example.com") as allowed:
        assert await allowed.collect(await allowed.subscribe(token), 1) == ["EmailQueued"]


RESUME = """
subscription Watch($token: String!, $after: ID) {
  registrationEvents(registrationToken: $token, after: $after) {
    __typename
    ... on EmailQueued { cursor }
    ... on EmailSent { cursor }
    ... on EmailVerified { cursor }
  }
}"""


async def test_a_client_that_reconnects_resumes_after_the_last_step_it_saw(
    start_herald: StartHerald, sink: ScriptedSink
) -> None:
    herald = start_herald(worker=False)
    token = register(herald, "cy@example.com")
    async with session(herald.base_url) as ws:
        queued = await anext(ws.events(await ws.subscribe(token, RESUME)))
    assert queued["__typename"] == "EmailQueued" and queued["cursor"]
    # While the client is away, the email goes out and the link is used.
    herald.start_worker()
    verify_from_sink(herald, sink)
    async with session(herald.base_url) as ws:
        resumed = ws.events(await ws.subscribe(token, RESUME, after=queued["cursor"]))
        names = [event["__typename"] async for event in resumed]
    assert names == ["EmailSent", "EmailVerified"]  # nothing seen twice, then complete
    async with session(herald.base_url) as ws:
        with pytest.raises(SubscriptionError) as refused:
            await anext(ws.events(await ws.subscribe(token, RESUME, after="not-a-cursor")))
    assert refused.value.code == "BAD_USER_INPUT"
