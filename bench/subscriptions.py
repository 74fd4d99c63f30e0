"""Subscription latency: from the commit that records a step to a client holding it.

Herald (``herald serve``: LISTEN, fan-out, strawberry subscription execution,
graphql-transport-ws) against a bare Starlette WebSocket broadcast of the same
notifications (``bench.bare_broadcast``), both real processes on loopback,
measured alternately in the same run with the same load generator and the same
producer (Herald's own ``RegistrationLog``, as the worker uses it).

    .venv/bin/python -m bench.subscriptions [--subscribers 200] [--events 40] [--pairs 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
import uuid
from dataclasses import dataclass

import websockets

from bench import harness
from domain import accounts, progress
from infra import bootstrap
from infra.tokens import TokenSigner

WATCH = """subscription($t: String!) { registrationEvents(registrationToken: $t) {
  __typename ... on EmailDeliveryFailed { at willRetry retryAt reason } } }"""


@dataclass
class Phase:
    target: str
    p50_ms: float
    p99_ms: float
    received: int
    expected: int


async def _herald_client(url: str, token: str, ready: asyncio.Event, stamps: list[float]) -> None:
    async with websockets.connect(url, subprotocols=["graphql-transport-ws"]) as ws:  # type: ignore[list-item]
        await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        payload = {"query": WATCH, "variables": {"t": token}}
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
        ready.set()
        # After "subscribe", the server sends only "next" messages here: count
        # them as the bare client counts its own, without parsing either.
        async for _ in ws:
            stamps.append(time.perf_counter())


async def _bare_client(url: str, ready: asyncio.Event, stamps: list[float]) -> None:
    async with websockets.connect(url) as ws:
        ready.set()
        async for _ in ws:
            stamps.append(time.perf_counter())


async def run_phase(
    target: str,
    url: str,
    container: bootstrap.Container,
    signer: TokenSigner,
    *,
    subscribers: int,
    events: int,
) -> Phase:
    registration_id = uuid.uuid4()
    token = signer.sign(accounts.REGISTRATION_PURPOSE, {"r": str(registration_id)})
    stamps: list[list[float]] = [[] for _ in range(subscribers)]
    readies = [asyncio.Event() for _ in range(subscribers)]
    if target == "herald":
        tasks = [
            asyncio.create_task(_herald_client(url, token, readies[i], stamps[i]))
            for i in range(subscribers)
        ]
    else:
        tasks = [
            asyncio.create_task(_bare_client(url, readies[i], stamps[i]))
            for i in range(subscribers)
        ]
    await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readies)), 60)
    await asyncio.sleep(1.0)  # every subscription registered server-side
    committed: list[float] = []
    for _ in range(events):
        async with container.courier.uow() as uow:
            await uow.progress.record(
                registration_id,
                progress.Step.EMAIL_FAILED,
                container.courier.clock.now(),
                will_retry=True,
                reason="451 reply",
            )
            started = time.perf_counter()
            await uow.commit()
        committed.append(started)
        await asyncio.sleep(0.05)
    deadline = time.perf_counter() + 30
    while any(len(s) < events for s in stamps) and time.perf_counter() < deadline:
        await asyncio.sleep(0.05)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    latencies = [
        (received - committed[i]) * 1000
        for per_client in stamps
        for i, received in enumerate(per_client[:events])
    ]
    quantiles = statistics.quantiles(latencies, n=100)
    return Phase(target, quantiles[49], quantiles[98], len(latencies), subscribers * events)


async def main(subscribers: int, events: int, pairs: int) -> None:
    async with harness.environment() as env:
        herald = env.start_serve()
        bare = env.start_process(
            [
                "-m",
                "uvicorn",
                "bench.bare_broadcast:app",
                "--log-level",
                "warning",
                # As herald serve: no per-message compression.
                "--ws-per-message-deflate",
                "false",
            ],
            "bare",
        )
        container = bootstrap.build(env.settings)
        signer = TokenSigner(env.settings.secret_keys)
        phases: list[Phase] = []
        try:
            for pair in range(pairs):
                order = ("herald", "bare") if pair % 2 == 0 else ("bare", "herald")
                for target in order:
                    url = f"{herald.ws_url}/graphql" if target == "herald" else f"{bare.ws_url}/ws"
                    phase = await run_phase(
                        target, url, container, signer, subscribers=subscribers, events=events
                    )
                    phases.append(phase)
                    harness.progress(
                        f"pair {pair + 1}/{pairs} {target:6}: p50 {phase.p50_ms:6.2f} ms"
                        f"  p99 {phase.p99_ms:6.2f} ms  ({phase.received}/{phase.expected})"
                    )
        finally:
            await container.close()
    rows = []
    for target in ("bare", "herald"):
        mine = [p for p in phases if p.target == target]
        rows.append(
            (
                target,
                statistics.median(p.p50_ms for p in mine),
                statistics.median(p.p99_ms for p in mine),
                sum(p.received for p in mine),
                sum(p.expected for p in mine),
            )
        )
    (_, bare_p50, bare_p99, *_), (_, herald_p50, herald_p99, *_) = rows
    print(
        f"\nSubscription latency, commit to client, {subscribers} subscribers, "
        f"{events} events x {pairs} pairs (medians over pairs)\n"
    )
    print("| target | p50 ms | p99 ms | messages received |")
    print("|---|---|---|---|")
    for target, p50, p99, got, expected in rows:
        print(f"| {target} | {p50:.2f} | {p99:.2f} | {got}/{expected} |")
    # Pair by pair, as the other benchmarks: the median of the per-pair ratios
    # and their range (the ratio of the medians beside it).
    by_pair = [{p.target: p for p in phases[i : i + 2]} for i in range(0, len(phases), 2)]

    def ratios(attribute: str) -> str:
        values = [getattr(p["herald"], attribute) / getattr(p["bare"], attribute) for p in by_pair]
        return f"{statistics.median(values):.2f} ({min(values):.2f} to {max(values):.2f})"

    print(
        f"| **ratio herald/bare**, per pair: median (range) | {ratios('p50_ms')}"
        f" | {ratios('p99_ms')} | |"
    )
    print(f"| ratio of the medians | {herald_p50 / bare_p50:.2f} | {herald_p99 / bare_p99:.2f} | |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=200)
    parser.add_argument("--events", type=int, default=40)
    parser.add_argument("--pairs", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(main(args.subscribers, args.events, args.pairs))
