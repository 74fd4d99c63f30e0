"""The baselines for the register benchmark: Herald's own work behind bare
Starlette POST endpoints, with no GraphQL.

The process is built as ``herald serve`` builds its own: the same
``infra.bootstrap.build(settings)`` container (so the same engine, pools,
hasher and outbox), the same lifespan (the registration listener runs here
too), the same body-size middleware and the same uvicorn configuration
(``api.app.server_config``). Only the GraphQL layer is missing.

    python -m bench.bare_register --port PORT     (environment as for herald serve)

``POST /register`` ``{"email", "password"}``: ``domain.accounts.register``,
exactly as the ``register`` mutation calls it; answers
``{"registrationToken": …}``.

``POST /hash`` ``{"password"}``: one hash on the container's own
``Argon2Hasher`` (its bounded pool), nothing else; answers ``{"ok": true}``.
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import AsyncIterator

import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from api import logs
from api.app import server_config
from api.limits import BodySizeLimit
from domain import accounts, errors
from infra import bootstrap
from infra.settings import Settings


def _container(request: Request) -> bootstrap.Container:
    container: bootstrap.Container = request.app.state.container
    return container


async def register(request: Request) -> JSONResponse:
    body = await request.json()
    command = accounts.Register(email=body["email"], password=body["password"])
    try:
        started = await accounts.register(command, _container(request).accounts)
    except errors.InvalidInput as error:
        return JSONResponse({"error": "invalid", "message": error.message}, status_code=400)
    except errors.RateLimited as error:
        return JSONResponse({"error": "rate limited", "message": error.message}, status_code=429)
    return JSONResponse({"registrationToken": started.registration_token})


async def hash_password(request: Request) -> JSONResponse:
    body = await request.json()
    try:
        await _container(request).hasher.hash(body["password"])
    except errors.RateLimited as error:
        return JSONResponse({"error": "rate limited", "message": error.message}, status_code=429)
    return JSONResponse({"ok": True})


def create_app(settings: Settings) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        container = bootstrap.build(settings)
        app.state.container = container
        container.hub.start()
        try:
            yield
        finally:
            await container.hub.close()
            await container.close()

    return Starlette(
        routes=[
            Route("/register", register, methods=["POST"]),
            Route("/hash", hash_password, methods=["POST"]),
        ],
        middleware=[Middleware(BodySizeLimit, max_bytes=settings.max_request_bytes)],
        lifespan=lifespan,
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    settings = Settings.from_env()
    config = server_config(create_app(settings), settings, host=args.host, port=args.port)
    logs.configure(settings.log_level)  # as herald serve does
    uvicorn.Server(config).run()
