"""argon2id hashing: off the event loop, and bounded."""

from __future__ import annotations

import asyncio

from argon2 import PasswordHasher

from domain import errors
from infra.passwords import Argon2Hasher


async def test_hashes_are_argon2id_and_made_off_the_event_loop() -> None:
    hasher = Argon2Hasher(time_cost=1, memory_kib=1024, threads=2)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    ticking = asyncio.create_task(ticker())
    try:
        hashed = await hasher.hash("correct horse")
    finally:
        ticking.cancel()
        hasher.close()
    assert hashed.startswith("$argon2id$")
    assert PasswordHasher().verify(hashed, "correct horse")
    # The loop kept running while the hash was made: it was not made on it.
    assert ticks > 0


async def test_past_the_waiting_limit_a_hash_is_refused_not_queued() -> None:
    hasher = Argon2Hasher(time_cost=2, memory_kib=65536, threads=1, max_waiting=1)
    try:
        outcomes = await asyncio.gather(
            *(hasher.hash(f"password {n}") for n in range(5)), return_exceptions=True
        )
    finally:
        hasher.close()
    refused = [o for o in outcomes if isinstance(o, errors.RateLimited)]
    assert len(refused) == 3 and all(o.retry_after_seconds == 1 for o in refused)
    assert sum(isinstance(o, str) for o in outcomes) == 2


async def test_one_computation_checks_a_password_against_a_hash_and_one_made_like_it() -> None:
    hasher = Argon2Hasher(time_cost=1, memory_kib=1024, threads=1)
    try:
        stored = await hasher.hash("owner secret")
        attempt = await hasher.hash("probe", like=stored)
        assert attempt != stored and attempt.split("$")[4] == stored.split("$")[4]  # same salt
        assert await hasher.check(stored, "owner secret", also=attempt) == "stored"
        assert await hasher.check(stored, "probe", also=attempt) == "also"
        assert await hasher.check(stored, "probe") is None
        assert await hasher.check(stored, "neither", also=attempt) is None
        assert await hasher.check(None, "owner secret") is None
        assert await hasher.check("!unusable:x", "owner secret") is None
        # A hash "like" something that is no argon2 hash gets a salt of its own.
        assert await hasher.check(await hasher.hash("pw", like="!unusable:x"), "pw") == "stored"
    finally:
        hasher.close()
