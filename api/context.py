"""What every resolver receives: the request and the use cases' ports."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket

from domain import accounts, ports


@dataclass
class Context:
    request: Request | WebSocket
    response: Response | WebSocket
    accounts: accounts.Accounts
    feed: ports.RegistrationFeed
