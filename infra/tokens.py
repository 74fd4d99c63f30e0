"""Signed, expiring tokens (itsdangerous), one salt per purpose, with key rotation."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from domain import errors


class TokenSigner:
    """The newest key (last) signs; every listed key still verifies, so keys rotate
    without breaking links already sent."""

    def __init__(self, secret_keys: Sequence[str]) -> None:
        self.secret_keys = list(secret_keys)

    def _serializer(self, purpose: str) -> URLSafeTimedSerializer:
        return URLSafeTimedSerializer(self.secret_keys, salt=purpose)

    def sign(self, purpose: str, payload: Mapping[str, Any]) -> str:
        return str(self._serializer(purpose).dumps(dict(payload)))

    def unsign(self, purpose: str, token: str, *, max_age_seconds: int) -> dict[str, Any]:
        try:
            payload = self._serializer(purpose).loads(token, max_age=max_age_seconds)
        except SignatureExpired:  # a subclass of BadSignature: catch it first
            raise errors.ExpiredToken() from None
        except BadSignature:
            raise errors.InvalidToken() from None
        if not isinstance(payload, dict):
            raise errors.InvalidToken()
        return payload
