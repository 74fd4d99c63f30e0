"""Signed tokens: purposes, rotation, tampering and expiry (real itsdangerous)."""

from __future__ import annotations

import time

import pytest

from domain import errors
from infra.tokens import TokenSigner

OLD, NEW = "o" * 32, "n" * 32


def test_a_token_round_trips_for_its_purpose() -> None:
    signer = TokenSigner([NEW])
    token = signer.sign("verify", {"u": "1", "n": 2})
    assert signer.unsign("verify", token, max_age_seconds=60) == {"u": "1", "n": 2}


def test_a_token_for_another_purpose_is_invalid() -> None:
    signer = TokenSigner([NEW])
    with pytest.raises(errors.InvalidToken):
        signer.unsign("reset", signer.sign("verify", {"u": "1"}), max_age_seconds=60)


def test_the_newest_key_signs_and_every_listed_key_verifies() -> None:
    old_token = TokenSigner([OLD]).sign("verify", {"u": "1"})
    rotated = TokenSigner([OLD, NEW])
    assert rotated.unsign("verify", old_token, max_age_seconds=60) == {"u": "1"}
    new_token = rotated.sign("verify", {"u": "1"})
    assert TokenSigner([NEW]).unsign("verify", new_token, max_age_seconds=60) == {"u": "1"}
    with pytest.raises(errors.InvalidToken):
        TokenSigner([NEW]).unsign("verify", old_token, max_age_seconds=60)


def test_a_tampered_token_is_invalid() -> None:
    signer = TokenSigner([NEW])
    token = signer.sign("verify", {"u": "1"})
    _payload, rest = token.split(".", 1)
    forged = TokenSigner(["x" * 32]).sign("verify", {"u": "2"}).split(".", 1)[0] + "." + rest
    for bad in (forged, token[:-2] + ("AA" if token[-2:] != "AA" else "BB"), "", "not.a.token"):
        with pytest.raises(errors.InvalidToken):
            signer.unsign("verify", bad, max_age_seconds=60)


def test_an_expired_token_is_expired_not_invalid() -> None:
    signer = TokenSigner([NEW])
    token = signer.sign("verify", {"u": "1"})
    time.sleep(1.1)  # itsdangerous timestamps have one-second resolution
    with pytest.raises(errors.ExpiredToken):
        signer.unsign("verify", token, max_age_seconds=0)
