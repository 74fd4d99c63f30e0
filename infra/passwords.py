"""argon2id hashing on a bounded thread pool, never on the event loop."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from argon2 import PasswordHasher


class Argon2Hasher:
    def __init__(self, *, time_cost: int, memory_kib: int, threads: int) -> None:
        self._hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_kib)
        # argon2 releases the GIL, so a pool of about one thread per core hashes
        # in parallel while the event loop keeps serving other requests.
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="argon2")

    async def hash(self, password: str) -> str:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self._hasher.hash, password)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
