"""``herald worker --processes N``: several worker processes under one
supervisor, every email sent once, a lost process replaced, one SIGTERM
stopping them all."""

from __future__ import annotations

import asyncio
import collections
import os
import signal
import time
from pathlib import Path

import httpx

from tests.e2e.conftest import Herald, ScriptedSink, StartHerald
from tests.e2e.test_resilience import wait_until_sent
from tests.e2e.test_signup import REGISTER


def _children(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        state, parent = stat.rsplit(")", 1)[1].split()[:2]
        if int(parent) == pid and state != "Z":  # a killed one not yet reaped is gone
            found.add(int(entry.name))
    return found


def _workers(pid: int, count: int, *, without: int = 0, timeout: float = 30) -> set[int]:
    """The supervisor's worker processes, once ``count`` of them are up
    (multiprocessing's resource tracker is a child too, and is not one)."""
    deadline = time.monotonic() + timeout
    while True:
        workers = {
            child
            for child in _children(pid)
            if b"resource_tracker" not in Path(f"/proc/{child}/cmdline").read_bytes()
        }
        if (len(workers) == count and without not in workers) or time.monotonic() > deadline:
            return workers
        time.sleep(0.2)


async def _register(herald: Herald, addresses: list[str]) -> None:
    # All at once: each process holds two jobs at most, so a burst has to be
    # shared between them.
    async with httpx.AsyncClient(base_url=herald.base_url, timeout=60) as client:

        async def one(address: str) -> str:
            variables = {"email": address, "password": "correct horse"}
            response = await client.post(
                "/graphql", json={"query": REGISTER, "variables": variables}
            )
            return str(response.json()["data"]["register"]["__typename"])

        outcomes = await asyncio.gather(*(one(address) for address in addresses))
    assert set(outcomes) == {"RegisterSuccess"}


async def test_worker_processes_share_the_queue_survive_a_lost_one_and_stop_together(
    start_herald: StartHerald, sink: ScriptedSink
) -> None:
    herald = start_herald(worker=False)
    herald.start_worker("--processes", "2")
    supervisor = herald.processes["worker"]
    first = _workers(supervisor.pid, 2)
    assert len(first) == 2, herald.log("worker")

    batch = [f"first{n}@example.com" for n in range(20)]
    await _register(herald, batch)
    assert wait_until_sent(herald, 20) == [("sent", 20)]
    # Both processes took jobs: the queue is shared, not copied.
    takers = herald.sql(
        "SELECT count(DISTINCT worker_id) FROM procrastinate_jobs WHERE status = 'succeeded'"
    )
    assert takers[0][0] == 2, herald.log("worker")

    lost = min(first)
    os.kill(lost, signal.SIGKILL)
    replaced = _workers(supervisor.pid, 2, without=lost)
    assert lost not in replaced and len(replaced) == 2, herald.log("worker")
    await _register(herald, [f"second{n}@example.com" for n in range(5)])
    assert wait_until_sent(herald, 25) == [("sent", 25)]
    received = collections.Counter(m.recipients[0] for m in sink.wait_for(25))
    assert set(received.values()) == {1} and len(received) == 25
    # The launcher's teardown sends the supervisor SIGTERM and checks that it
    # exits 0; every worker process must be gone with it.
    supervisor.send_signal(signal.SIGTERM)
    assert supervisor.wait(timeout=60) == 0, herald.log("worker")
    assert not _children(supervisor.pid)
