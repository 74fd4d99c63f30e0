"""A small GraphQL-over-WebSocket client for the tests, speaking both protocols
(graphql-transport-ws and the legacy graphql-ws) over the real ``websockets``."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.protocol import State
from websockets.typing import Origin, Subprotocol
from websockets.uri import parse_uri

TRANSPORT_WS = "graphql-transport-ws"
LEGACY_WS = "graphql-ws"

WATCH = """
subscription Watch($token: String!) {
  registrationEvents(registrationToken: $token) {
    __typename
    ... on EmailQueued { at }
    ... on EmailSent { at }
    ... on EmailDeliveryFailed { at willRetry retryAt reason }
    ... on EmailVerified { at }
  }
}"""


class Session:
    def __init__(self, ws: ClientConnection, protocol: str) -> None:
        self.ws = ws
        self.protocol = protocol
        self._ids = 0

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(message))

    async def receive(self, timeout: float = 30) -> dict[str, Any]:
        while True:
            message: dict[str, Any] = json.loads(await asyncio.wait_for(self.ws.recv(), timeout))
            if message["type"] in {"ka", "ping", "pong"}:
                if message["type"] == "ping":
                    await self.send({"type": "pong"})
                continue
            return message

    async def subscribe(self, token: str, query: str = WATCH, **variables: Any) -> str:
        self._ids += 1
        operation = str(self._ids)
        kind = "subscribe" if self.protocol == TRANSPORT_WS else "start"
        payload = {"query": query, "variables": {"token": token, **variables}}
        await self.send({"id": operation, "type": kind, "payload": payload})
        return operation

    async def events(self, operation: str, *, timeout: float = 30) -> AsyncIterator[dict[str, Any]]:
        """The operation's results until it completes; an error message raises."""
        data = "next" if self.protocol == TRANSPORT_WS else "data"
        while True:
            message = await self.receive(timeout)
            if message["type"] == "complete" and message.get("id") != operation:
                continue  # the end of an operation that already reported its error
            assert message.get("id") == operation, message
            if message["type"] == data:
                payload = message["payload"]
                if payload.get("errors"):
                    raise SubscriptionError(payload["errors"])
                yield payload["data"]["registrationEvents"]
            elif message["type"] == "error":
                raise SubscriptionError(message["payload"])
            elif message["type"] == "complete":
                return
            else:
                raise AssertionError(f"unexpected message {message}")

    async def collect(self, operation: str, count: int, timeout: float = 30) -> list[str]:
        names: list[str] = []
        async for event in self.events(operation, timeout=timeout):
            names.append(event["__typename"])
            if len(names) == count:
                break
        return names


class SubscriptionError(Exception):
    def __init__(self, errors: Any) -> None:
        super().__init__(json.dumps(errors))
        self.errors = errors if isinstance(errors, list) else [errors]

    @property
    def message(self) -> str:
        return str(self.errors[0]["message"])

    @property
    def code(self) -> str | None:
        return self.errors[0].get("extensions", {}).get("code")


def ws_url(base_url: str) -> str:
    return base_url.replace("http://", "ws://", 1) + "/graphql"


@asynccontextmanager
async def session(
    base_url: str,
    protocol: str = TRANSPORT_WS,
    *,
    init: bool = True,
    origin: str | None = None,
    init_payload: dict[str, Any] | None = None,
) -> AsyncIterator[Session]:
    async with websockets.connect(
        ws_url(base_url),
        subprotocols=[Subprotocol(protocol)],
        origin=None if origin is None else Origin(origin),
        max_size=2**22,
    ) as ws:
        client = Session(ws, protocol)
        if init:
            await client.send({"type": "connection_init", "payload": init_payload or {}})
            ack = await client.receive()
            assert ack["type"] == "connection_ack", ack
        yield client


class StalledReader:
    """A subscriber that stops reading its socket: a phone that lost signal, a tab
    in the background. Blocking and sans-I/O on purpose, so that nothing reads
    the socket behind the test's back and the server sees a real full window."""

    def __init__(self, base_url: str) -> None:
        host, port = base_url.removeprefix("http://").split(":")
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.settimeout(30)
        self.sock.connect((host, int(port)))
        self.protocol = ClientProtocol(
            parse_uri(ws_url(base_url)), subprotocols=[Subprotocol(TRANSPORT_WS)]
        )
        self.protocol.send_request(self.protocol.connect())
        self._flush()
        self._pending: list[dict[str, Any]] = []
        while self.protocol.state is not State.OPEN:
            self.protocol.receive_data(self.sock.recv(4096))
            if self.protocol.handshake_exc is not None:
                raise self.protocol.handshake_exc
        self.protocol.events_received()  # the handshake response

    def _flush(self) -> None:
        for data in self.protocol.data_to_send():
            if data:
                self.sock.sendall(data)

    def send(self, message: dict[str, Any]) -> None:
        self.protocol.send_text(json.dumps(message).encode())
        self._flush()

    def receive(self) -> dict[str, Any]:
        while not self._pending:
            data = self.sock.recv(65536)
            self.protocol.receive_data(data)
            self._flush()  # pongs and close frames
            for event in self.protocol.events_received():
                if isinstance(event, Frame) and event.opcode is Opcode.TEXT:
                    self._pending.append(json.loads(event.data))
                elif isinstance(event, Frame) and event.opcode is Opcode.CLOSE:
                    raise ConnectionError("closed by the server")
            if not data:
                raise ConnectionError("connection closed")
        return self._pending.pop(0)

    def subscribe(self, token: str) -> dict[str, Any]:
        """Open the connection and subscribe; return the first event."""
        self.send({"type": "connection_init", "payload": {}})
        assert self.receive()["type"] == "connection_ack"
        payload = {"query": WATCH, "variables": {"token": token}}
        self.send({"id": "1", "type": "subscribe", "payload": payload})
        return self.receive()

    def read_to_the_end(self) -> tuple[int, dict[str, Any]]:
        """Catch up: count the events still on their way, return the last message."""
        count = 0
        while True:
            message = self.receive()
            if message["type"] == "next" and not message["payload"].get("errors"):
                count += 1
                continue
            return count, message

    def close(self) -> None:
        self.sock.close()
