"""The processes of the register benchmark, other than the servers' own start:
the load generator's client, the sink's arrivals, ``herald worker``, and a
``herald serve`` beside its bare baseline."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import psycopg

from bench import harness, inbox

BARE = ["-m", "bench.bare_register"]


class LoadGenerator:
    """``bench.load`` in its own process, one phase at a time."""

    def __init__(self) -> None:
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.load",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=1 << 24,
        )

    async def run(self, **spec: Any) -> dict[str, Any]:
        assert self.process is not None and self.process.stdin and self.process.stdout
        self.process.stdin.write(json.dumps(spec).encode() + b"\n")
        await self.process.stdin.drain()
        line = await self.process.stdout.readline()
        if not line:
            raise RuntimeError("the load generator exited")
        result: dict[str, Any] = json.loads(line)
        return result

    async def stop(self) -> None:
        if self.process is not None and self.process.stdin:
            self.process.stdin.close()
            await self.process.wait()


class Inbox:
    """What ``bench.inbox`` has received so far."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.offset = 0
        self.arrived: dict[str, float] = {}

    async def wait_for(self, addresses: list[str], timeout: float = 60) -> dict[str, float]:
        deadline = time.monotonic() + timeout
        while True:
            self.offset = inbox.read_arrivals(self.path, self.offset, self.arrived)
            if all(a in self.arrived for a in addresses) or time.monotonic() > deadline:
                return {a: self.arrived[a] for a in addresses if a in self.arrived}
            await asyncio.sleep(0.05)


def wait_deliveries(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    with psycopg.connect(url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            [(pending,)] = conn.execute(
                "SELECT count(*) FROM email_deliveries WHERE status IN ('queued', 'sending')"
            ).fetchall()
            if pending == 0:
                return
            time.sleep(0.05)
    raise RuntimeError("deliveries still pending after the phase")


@contextlib.contextmanager
def worker(env: harness.Environment, concurrency: int) -> Iterator[subprocess.Popen[bytes]]:
    with (env.logs / "worker.log").open("ab") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from api.cli import main; main()",
                "worker",
                "--concurrency",
                str(concurrency),
            ],
            env=env.env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield process
    finally:
        process.terminate()
        process.wait(timeout=30)


@contextlib.asynccontextmanager
async def serving(
    env: harness.Environment,
) -> AsyncIterator[tuple[harness.Process, harness.Process]]:
    herald = env.start_serve()
    bare = env.start_process(BARE, "bare-register")
    try:
        yield herald, bare
    finally:
        for process in (herald, bare):
            process.popen.terminate()
            process.popen.wait(timeout=20)
            env.processes.remove(process)
