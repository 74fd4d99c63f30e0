"""The baseline for the subscription benchmark: a bare Starlette WebSocket
broadcast of each notification on Herald's channel, with no GraphQL at all.

Run as ``uvicorn bench.bare_broadcast:app`` with ``DATABASE_URL`` set.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator

import psycopg
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from infra.registration_log import CHANNEL
from infra.settings import database_url

clients: set[WebSocket] = set()


async def listen() -> None:
    url = database_url(os.environ["DATABASE_URL"])
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as connection:
        await connection.execute(f"LISTEN {CHANNEL}")
        async for notification in connection.notifies():
            for client in list(clients):
                with contextlib.suppress(Exception):
                    await client.send_text(notification.payload)


async def endpoint(websocket: WebSocket) -> None:
    await websocket.accept()
    clients.add(websocket)
    try:
        while True:
            await websocket.receive_text()
    except WebSocketDisconnect:
        pass
    finally:
        clients.discard(websocket)


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    task = asyncio.create_task(listen())
    yield
    task.cancel()


app = Starlette(routes=[WebSocketRoute("/ws", endpoint)], lifespan=lifespan)
