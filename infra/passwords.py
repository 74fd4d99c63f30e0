"""argon2id hashing on a bounded thread pool, never on the event loop."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from argon2 import PasswordHasher

from domain import errors


class Argon2Hasher:
    def __init__(
        self, *, time_cost: int, memory_kib: int, threads: int, max_waiting: int = 128
    ) -> None:
        self._hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_kib)
        # argon2 releases the GIL, so a pool of about one thread per core hashes
        # in parallel while the event loop keeps serving other requests.
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="argon2")
        # The pool's own queue is unbounded: past this many hashes in hand, a
        # flood of sign-ups is told to come back instead of piling up memory
        # and latency for everyone.
        self._max_in_hand = threads + max_waiting
        self._in_hand = 0

    async def hash(self, password: str) -> str:
        if self._in_hand >= self._max_in_hand:
            raise errors.RateLimited(1, "The server is busy; try again in a second.")
        self._in_hand += 1
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._pool, self._hasher.hash, password)
        finally:
            self._in_hand -= 1

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
