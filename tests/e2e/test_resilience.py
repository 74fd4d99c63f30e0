"""Load and faults against real processes: nothing missing, nothing duplicated."""

from __future__ import annotations

import asyncio
import collections
import time

import httpx

from tests.e2e.conftest import ScriptedSink, StartHerald
from tests.e2e.test_signup import REGISTER


def wait_until_sent(herald: object, count: int, timeout: float = 60) -> list[tuple[str, int]]:
    deadline = time.monotonic() + timeout
    while True:
        rows = herald.sql("SELECT status, count(*) FROM email_deliveries GROUP BY status")  # type: ignore[attr-defined]
        if dict(rows).get("sent", 0) >= count or time.monotonic() > deadline:
            return sorted(rows)
        time.sleep(0.2)


async def test_300_concurrent_registrations_make_300_emails_exactly(
    start_herald: StartHerald, sink: ScriptedSink
) -> None:
    # Room for the whole burst in the hashing queue: this test is about delivery.
    herald = start_herald(PASSWORD_HASH_MAX_WAITING=400)
    async with httpx.AsyncClient(base_url=herald.base_url, timeout=60) as client:

        async def register(n: int) -> str:
            variables = {"email": f"user{n}@example.com", "password": "correct horse"}
            response = await client.post(
                "/graphql", json={"query": REGISTER, "variables": variables}
            )
            return str(response.json()["data"]["register"]["__typename"])

        outcomes = await asyncio.gather(*(register(n) for n in range(300)))
    assert collections.Counter(outcomes) == {"RegisterSuccess": 300}
    assert wait_until_sent(herald, 300) == [("sent", 300)]
    sink.wait_for(300)
    time.sleep(1)  # anything extra would have arrived by now
    recipients = collections.Counter(m.recipients[0] for m in sink.messages)
    assert len(recipients) == 300 and set(recipients.values()) == {1}


def test_every_connection_to_the_database_dropped_at_once_loses_nothing(
    start_herald: StartHerald, sink: ScriptedSink
) -> None:
    herald = start_herald()
    herald.graphql(REGISTER, {"email": "before@example.com", "password": "correct horse"})
    sink.wait_for(1)
    # What a PostgreSQL restart does to every client: all their connections die.
    killed = herald.sql(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
        " WHERE datname = current_database() AND pid <> pg_backend_pid()"
    )
    assert killed[0][0] >= 3  # the API's pool, the listener, the worker's
    deadline = time.monotonic() + 30
    while True:  # the API may answer the first request with a masked error
        response = httpx.post(
            f"{herald.base_url}/graphql",
            json={
                "query": REGISTER,
                "variables": {"email": "after@example.com", "password": "correct horse"},
            },
            timeout=30,
        )
        data = response.json().get("data")
        if data and data["register"]["__typename"] == "RegisterSuccess":
            break
        assert time.monotonic() < deadline, response.text
        time.sleep(0.5)
    assert wait_until_sent(herald, 2) == [("sent", 2)]
    assert sorted(m.recipients[0] for m in sink.wait_for(2)) == [
        "after@example.com",
        "before@example.com",
    ]


def test_a_worker_that_stops_on_its_own_is_started_again(
    start_herald: StartHerald, sink: ScriptedSink
) -> None:
    herald = start_herald()
    herald.graphql(REGISTER, {"email": "before@example.com", "password": "correct horse"})
    sink.wait_for(1)
    # Make fetching jobs fail, as a database that stays away would: procrastinate's
    # worker gives up and ends.
    herald.sql("ALTER FUNCTION procrastinate_fetch_job_v2 RENAME TO herald_test_fetch_away")
    try:
        herald.graphql(REGISTER, {"email": "during@example.com", "password": "correct horse"})
        deadline = time.monotonic() + 30
        while "stopped on its own" not in herald.log("worker"):
            assert time.monotonic() < deadline, herald.log("worker")[-3000:]
            time.sleep(0.1)
    finally:
        herald.sql("ALTER FUNCTION herald_test_fetch_away RENAME TO procrastinate_fetch_job_v2")
    messages = sink.wait_for(2)
    assert sorted(m.recipients[0] for m in messages) == ["before@example.com", "during@example.com"]
    assert herald.processes["worker"].poll() is None
