"""The Starlette application: GraphQL over HTTP and WebSocket, and a few pages."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Protocol

import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL

from api import fanout, pages
from api.context import Context
from api.limits import BodySizeLimit
from api.schema import Limits, create_schema
from domain import accounts
from infra import bootstrap
from infra.settings import Settings


class HeraldGraphQL(GraphQL[Context, None]):
    _encoder = fanout.NextMessageEncoder()

    def encode_json(self, data: object) -> str:
        return self._encoder.encode(data)

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> Context:
        container: bootstrap.Container = request.app.state.container
        return Context(
            request=request,
            response=response,
            accounts=container.accounts,
            operations=container.operations,
            feed=container.hub,
        )


async def healthz(request: Request) -> JSONResponse:
    container: bootstrap.Container = request.app.state.container
    if await container.database_ready():
        # Subscriptions still replay from the database while the listener
        # reconnects; operators see it here, load balancers need not.
        listener = "connected" if container.hub.connected.is_set() else "reconnecting"
        return JSONResponse({"status": "ok", "listener": listener})
    return JSONResponse({"status": "database unavailable"}, status_code=503)


class CaughtMessage(Protocol):
    @property
    def recipients(self) -> Sequence[str]: ...
    @property
    def subject(self) -> str: ...
    @property
    def text(self) -> str: ...
    @property
    def received_at(self) -> str: ...
    @property
    def message_id(self) -> str: ...


def _mailbox_routes(mailbox: Callable[[], Sequence[CaughtMessage]]) -> list[BaseRoute]:
    """``herald dev``'s mailbox: the page, and the messages it lists as JSON."""
    tokens: dict[str, str | None] = {}

    async def messages(request: Request) -> JSONResponse:
        container: bootstrap.Container = request.app.state.container
        listed = []
        for message in mailbox():
            if message.message_id not in tokens:
                tokens[message.message_id] = await accounts.watch_token_for_message(
                    message.message_id, container.accounts
                )
            listed.append(
                {
                    "id": message.message_id,
                    "to": list(message.recipients),
                    "subject": message.subject,
                    "receivedAt": message.received_at,
                    "text": message.text,
                    "registrationToken": tokens[message.message_id],
                }
            )
        return JSONResponse(listed, headers={"Cache-Control": "no-store"})

    return [
        Route("/dev/mail", pages.mailbox_page, methods=["GET"]),
        Route("/dev/mail.json", messages, methods=["GET"]),
    ]


def server_config(app: Starlette, settings: Settings, *, host: str, port: int) -> uvicorn.Config:
    """uvicorn's settings for Herald, the same for ``herald serve`` and ``herald dev``."""
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        ws_max_size=settings.max_request_bytes,
        ws_ping_interval=settings.ws_keepalive_seconds,
        ws_ping_timeout=settings.ws_keepalive_seconds * 2,
        # Events are a few hundred bytes: compressing each costs more CPU per
        # subscriber than it saves on the wire.
        ws_per_message_deflate=False,
        log_level=settings.log_level.lower(),
        proxy_headers=True,
    )


def create_app(
    settings: Settings,
    *,
    container: bootstrap.Container | None = None,
    mailbox: Callable[[], Sequence[CaughtMessage]] | None = None,
) -> Starlette:
    """The ASGI app. Builds its container in the lifespan unless one is given
    (``herald dev`` shares one container between the API and the worker)."""
    schema = create_schema(
        Limits(
            max_depth=settings.graphql_max_depth,
            max_tokens=settings.graphql_max_tokens,
            max_aliases=settings.graphql_max_aliases,
        ),
        mask_errors=not settings.debug,
    )
    graphql = HeraldGraphQL(
        schema,
        graphql_ide="graphiql" if settings.graphiql_enabled else None,
        allow_queries_via_get=False,
        keep_alive=True,
        keep_alive_interval=settings.ws_keepalive_seconds,
        connection_init_wait_timeout=timedelta(seconds=settings.ws_connection_init_timeout),
        max_subscriptions_per_connection=settings.ws_max_subscriptions,
        allowed_origins=settings.allowed_origins,
    )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        owned = container is None
        built = bootstrap.build(settings) if container is None else container
        app.state.container = built
        built.hub.start()
        try:
            yield
        finally:
            await built.hub.close()
            if owned:
                await built.close()

    routes: list[BaseRoute] = [
        Route("/graphql", graphql, methods=["GET", "POST"]),
        WebSocketRoute("/graphql", graphql),
        Route("/verify-email", pages.verify_email_page, methods=["GET"]),
        Route("/reset-password", pages.reset_password_page, methods=["GET"]),
        Route("/confirm-email-change", pages.confirm_email_change_page, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
    ]
    if mailbox is not None:
        routes += _mailbox_routes(mailbox)
    middleware: list[Middleware] = [Middleware(BodySizeLimit, max_bytes=settings.max_request_bytes)]
    if settings.allowed_origins:
        # Sign-up screens served from another origin; no cookies are used, so
        # credentials stay off.
        middleware.insert(
            0,
            Middleware(
                CORSMiddleware,
                allow_origins=list(settings.allowed_origins),
                allow_methods=["GET", "POST"],
                allow_headers=["content-type", "authorization"],
                max_age=600,
            ),
        )
    return Starlette(routes=routes, middleware=middleware, lifespan=lifespan)
