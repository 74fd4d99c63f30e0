"""What every resolver receives: the request, its credential and the use cases' ports."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket

from domain import accounts, operations, ports


def _bearer(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    scheme, _, credential = value.strip().partition(" ")
    if scheme.lower() != "bearer" or not credential.strip():
        return None
    return credential.strip()


@dataclass
class Context:
    request: Request | WebSocket
    response: Response | WebSocket
    accounts: accounts.Accounts
    operations: operations.Operations
    feed: ports.RegistrationFeed
    # The ``connection_init`` payload of a WebSocket; strawberry sets it.
    connection_params: dict[str, Any] | None = field(default=None)

    @property
    def bearer(self) -> str | None:
        """The credential of ``Authorization: Bearer …``: a request header over
        HTTP, the ``Authorization`` entry of ``connection_init`` on a WebSocket
        (browsers cannot set WebSocket headers)."""
        if isinstance(self.connection_params, dict):
            params = {str(k).lower(): v for k, v in self.connection_params.items()}
            if "authorization" in params:
                return _bearer(params["authorization"])
        return _bearer(self.request.headers.get("authorization"))

    @property
    def client(self) -> str | None:
        """The client's network address (the proxy's forwarded one behind a
        trusted proxy), for per-client limits."""
        return self.request.client.host if self.request.client else None
