"""argon2id hashing on a bounded thread pool, never on the event loop."""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from domain import errors

T = TypeVar("T")


def _yield_to_the_loop() -> None:
    # Linux applies a nice value to the one thread whose id is given.
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)


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
        # in parallel while the event loop keeps serving other requests; at a
        # lower priority than the event loop, so that a flood of sign-ups does
        # not slow every other request down.
        self._pool = ThreadPoolExecutor(
            max_workers=threads, thread_name_prefix="argon2", initializer=_yield_to_the_loop
        )
        # The pool's own queue is unbounded: past this many hashes in hand, a
        # flood of sign-ups is told to come back instead of piling up memory
        # and latency for everyone.
        self._max_in_hand = threads + max_waiting
        self._in_hand = 0
        # Checked against when an address has no account: the same work as a
        # real check, with today's parameters.
        self._dummy: str | None = None

    async def _run(self, work: Callable[[], T]) -> T:
        if self._in_hand >= self._max_in_hand:
            raise errors.RateLimited(1, "The server is busy; try again in a second.")
        self._in_hand += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, work)
        finally:
            self._in_hand -= 1

    async def hash(self, password: str) -> str:
        return await self._run(lambda: self._hasher.hash(password))

    async def verify(self, password_hash: str | None, password: str) -> bool:
        if password_hash is None:
            if self._dummy is None:
                self._dummy = await self.hash("not the password of anyone")
            await self._run(lambda: self._matches(self._dummy or "", password))
            return False
        return await self._run(lambda: self._matches(password_hash, password))

    def _matches(self, password_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(password_hash, password)
        except VerificationError:
            return False
        except InvalidHashError:
            # An unusable password (see ``users.unusable_password``): no work
            # to do, but the same time as a real check.
            self._hasher.hash(password)
            return False

    def needs_rehash(self, password_hash: str) -> bool:
        try:
            return self._hasher.check_needs_rehash(password_hash)
        except InvalidHashError:
            return False

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
