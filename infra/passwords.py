"""argon2id hashing on a bounded thread pool, never on the event loop."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hmac
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from argon2 import Parameters, PasswordHasher, extract_parameters, low_level
from argon2.exceptions import InvalidHashError

from domain import errors

T = TypeVar("T")


def _salt(encoded: str) -> bytes:
    salt = encoded.split("$")[4]
    return base64.b64decode(salt + "=" * (-len(salt) % 4))


def _hash_with(password: str, p: Parameters, salt: bytes) -> str:
    """The encoded argon2 hash of ``password`` with this salt and these parameters."""
    return low_level.hash_secret(
        password.encode(),
        salt,
        time_cost=p.time_cost,
        memory_cost=p.memory_cost,
        parallelism=p.parallelism,
        hash_len=p.hash_len,
        type=p.type,
        version=p.version,
    ).decode()


def _yield_to_the_loop() -> None:
    # Linux applies a nice value to the one thread whose id is given. The
    # lowest: hashing takes the CPU that the event loop leaves, so a flood of
    # sign-ups does not slow other requests (bench.register, figure 2: p99 of a
    # trivial query under load 3.2x idle at nice 10, 1.8x at nice 19). The
    # waiting queue bounds how far hashing may fall behind.
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)


class Argon2Hasher:
    def __init__(
        self, *, time_cost: int, memory_kib: int, threads: int, max_waiting: int = 128
    ) -> None:
        # One lane: argon2 would otherwise start a thread per lane for every
        # hash, so a pool of N threads would run 4N on the cores. The cost to
        # an attacker is the same (memory and passes); hashes made with other
        # parameters still verify, and are upgraded at the next sign-in.
        self._hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=1)
        # argon2 releases the GIL, so a pool of about one thread per core hashes
        # in parallel while the event loop keeps serving other requests; at
        # the lowest priority, so that a flood of sign-ups does not slow every
        # other request down.
        self._pool = ThreadPoolExecutor(
            max_workers=threads, thread_name_prefix="argon2", initializer=_yield_to_the_loop
        )
        # The pool's own queue is unbounded: past this many hashes in hand, a
        # flood of sign-ups is told to come back instead of piling up memory
        # and latency for everyone.
        self._max_in_hand = threads + max_waiting
        self._in_hand = 0

    async def _run(self, work: Callable[[], T]) -> T:
        if self._in_hand >= self._max_in_hand:
            raise errors.RateLimited(1, "The server is busy; try again in a second.")
        self._in_hand += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, work)
        finally:
            self._in_hand -= 1

    async def hash(self, password: str, *, like: str | None = None) -> str:
        if like is not None:
            with contextlib.suppress(InvalidHashError, ValueError, IndexError):
                parameters, salt = extract_parameters(like), _salt(like)
                return await self._run(lambda: _hash_with(password, parameters, salt))
        return await self._run(lambda: self._hasher.hash(password))

    async def check(
        self, password_hash: str | None, password: str, *, also: str | None = None
    ) -> str | None:
        try:
            parameters, salt = extract_parameters(password_hash or ""), _salt(password_hash or "")
        except (InvalidHashError, ValueError, IndexError):
            # No account, or an unusable password (``users.unusable_password``):
            # nothing can match, but the same work as a real check.
            await self._run(lambda: self._hasher.hash(password))
            return None
        # One computation answers for both: ``also`` shares the salt and
        # parameters (see ``hash(like=...)``).
        computed = await self._run(lambda: _hash_with(password, parameters, salt))
        if hmac.compare_digest(computed, password_hash or ""):
            return "stored"
        if also is not None and hmac.compare_digest(computed, also):
            return "also"
        return None

    def needs_rehash(self, password_hash: str) -> bool:
        try:
            return self._hasher.check_needs_rehash(password_hash)
        except InvalidHashError:
            return False

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
