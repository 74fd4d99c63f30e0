"""The register path, side by side with baselines measured in the same run.

    .venv/bin/python -m bench.register [--pairs N] [--quick] [--million]

1. GraphQL overhead on writes: ``register`` throughput of ``herald serve``
   (argon2id at its cheapest) against ``bench.bare_register``'s bare POST
   endpoint doing the same use case through the same container.
2. Hashing off the event loop: ``register`` throughput with production
   argon2id against a bare hash endpoint on the same kind of pool, both runs
   beside the same probe (a trivial query, 50 a second, to the Herald
   process); and that probe's p99 while registrations saturate the pool,
   against idle.
3. Register to inbox: from the ``register`` answer to the message at a
   loopback sink through ``herald worker``, at 1 and at 50 a second, against
   the same messages sent straight to the sink.
4. Cost as work grows: 1 and 3 again over 10^4 (and with ``--million``,
   10^6) existing users, and the plans of the hot statements.

Every process is real and on loopback: PostgreSQL, the servers (uvicorn),
``herald worker``, the sink (``bench.inbox``) and the load generator
(``bench.load``), one of each kind for both sides of a comparison. A and B
alternate within each pair; figures are medians over pairs, ratios the
median of the per-pair ratios. The database is taken back to its population
after every phase that writes.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import statistics
import subprocess
import sys
import tempfile
import uuid
from datetime import UTC, datetime
from typing import Any

from bench import harness, population, processes
from bench.report import Comparison, Table
from infra import devmail
from infra.settings import Settings

# Cheapest argon2id that argon2-cffi accepts (8 KiB per lane, 4 lanes), so that
# hashing does not hide the rest; and no global email budget in the way.
CHEAP = {
    "PASSWORD_HASH_TIME_COST": "1",
    "PASSWORD_HASH_MEMORY_KIB": "32",
    "EMAILS_PER_MINUTE": "1000000000",
}
PRODUCTION_HASHING = ("PASSWORD_HASH_TIME_COST", "PASSWORD_HASH_MEMORY_KIB")


@dataclasses.dataclass(frozen=True)
class Timing:
    warmup: float = 1.0
    seconds: float = 5.0  # figures 1 and 4
    hash_warmup: float = 2.0
    hash_seconds: float = 6.0
    idle_seconds: float = 5.0  # figure 2's idle probe
    slow_seconds: float = 20.0  # figure 3 at 1/s
    fast_seconds: float = 6.0  # figure 3 at 50/s


QUICK = Timing(0.5, 2.0, 1.0, 3.0, 2.0, 5.0, 3.0)


@dataclasses.dataclass
class Bench:
    env: harness.Environment
    load: processes.LoadGenerator
    inbox: processes.Inbox
    sink_port: int
    mark: datetime
    timing: Timing
    connections: int
    table: Table
    problems: list[str] = dataclasses.field(default_factory=list)

    @property
    def url(self) -> str:
        return self.env.settings.database_url

    def reset(self) -> None:
        population.reset(self.url, self.mark)

    def check(self, what: str, result: dict[str, Any]) -> None:
        if result.get("failures"):
            self.problems.append(
                f"{what}: {result['failures']} unsuccessful answers,"
                f" e.g. {result['failure_sample']}"
            )

    async def throughput(self, target: str, port: int, **extra: Any) -> dict[str, Any]:
        result = await self.load.run(
            kind="closed",
            target=target,
            port=port,
            connections=self.connections,
            warmup=self.timing.warmup,
            seconds=self.timing.seconds,
            prefix=uuid.uuid4().hex[:10],
            **extra,
        )
        self.check(target, result)
        return result


def _order(pair: int, *targets: str) -> tuple[str, ...]:
    return targets if pair % 2 == 0 else tuple(reversed(targets))


def _scale(users: int) -> str:
    return "0" if users == 0 else f"10^{len(str(users)) - 1}"


async def writes(bench: Bench, herald: harness.Process, bare: harness.Process, users: int) -> None:
    """Figure 1 (and 4): register throughput, GraphQL against the bare endpoint."""
    row = bench.table.add(
        Comparison(
            f"1. register/s, cheapest argon2id, {_scale(users)} existing users",
            baseline="bare POST /register",
            target_ratio=0.8,
        )
    )
    for pair in range(bench.table.pairs):
        for target in _order(pair, "bare", "herald"):
            if target == "bare":
                result = await bench.throughput("bare-register", bare.port)
                row.baseline_values.append(result["rate"])
            else:
                result = await bench.throughput("graphql-register", herald.port)
                row.herald_values.append(result["rate"])
            lat = result["latency"]
            harness.progress(
                f"  [1 @{_scale(users)}] pair {pair + 1}/{bench.table.pairs} {target:6}: "
                f"{result['rate']:7.1f} register/s"
                f"  p50 {lat['p50']:.1f} ms  p99 {lat['p99']:.1f} ms"
            )
            bench.reset()


async def hashing(bench: Bench, herald: harness.Process, bare: harness.Process) -> None:
    """Figure 2: production argon2id, the hash pool saturated."""
    rate = bench.table.add(
        Comparison(
            "2. register/s, production argon2id (pool saturated)",
            baseline="bare POST /hash, same pool",
            target_ratio=0.9,
        )
    )
    p99 = bench.table.add(
        Comparison(
            "2. `{ passwordPolicy }` p99 ms, during 2. vs idle",
            baseline="same query, idle server",
            target_ratio=2.0,
            higher_is_better=False,
            unit="ms",
        )
    )
    p50 = bench.table.add(
        Comparison(
            "2. `{ passwordPolicy }` p50 ms, during 2. vs idle",
            baseline="same query, idle server",
            higher_is_better=False,
            unit="ms",
        )
    )
    timing = bench.timing
    probe = {"probe_port": herald.port, "probe_rate": 50}
    for pair in range(bench.table.pairs):
        for target in _order(pair, "bare", "idle", "herald"):
            if target == "bare":
                result = await bench.load.run(
                    kind="closed",
                    target="bare-hash",
                    port=bare.port,
                    connections=8,
                    warmup=timing.hash_warmup,
                    seconds=timing.hash_seconds,
                    prefix="h",
                    # The same probe as beside Herald's run (it asks the idle
                    # Herald process): both runs carry the same extra load.
                    **probe,
                )
                bench.check("bare-hash", result)
                rate.baseline_values.append(result["rate"])
                line = f"{result['rate']:6.1f} hash/s"
            elif target == "idle":
                result = await bench.load.run(
                    kind="probe", warmup=0.2, seconds=timing.idle_seconds, **probe
                )
                p99.baseline_values.append(result["probe"]["p99"])
                p50.baseline_values.append(result["probe"]["p50"])
                got = result["probe"]
                line = f"probe p50 {got['p50']:.2f} ms  p99 {got['p99']:.2f} ms"
            else:
                result = await bench.load.run(
                    kind="closed",
                    target="graphql-register",
                    port=herald.port,
                    connections=8,
                    warmup=timing.hash_warmup,
                    seconds=timing.hash_seconds,
                    prefix=uuid.uuid4().hex[:10],
                    **probe,
                )
                bench.check("graphql-register (production argon2id)", result)
                rate.herald_values.append(result["rate"])
                p99.herald_values.append(result["probe"]["p99"])
                p50.herald_values.append(result["probe"]["p50"])
                line = (
                    f"{result['rate']:6.1f} register/s  probe p50 {result['probe']['p50']:.2f} ms"
                    f"  p99 {result['probe']['p99']:.2f} ms"
                )
                bench.reset()
            harness.progress(f"  [2] pair {pair + 1}/{bench.table.pairs} {target:6}: {line}")


async def to_inbox(
    bench: Bench, herald: harness.Process, rates: tuple[int, ...], users: int
) -> None:
    """Figure 3 (and 4): from the register answer (or a direct send) to the sink."""
    timing = bench.timing
    for per_second in rates:
        seconds = timing.slow_seconds if per_second < 10 else timing.fast_seconds
        label = f"3. register→inbox at {per_second}/s, {_scale(users)} existing users"
        rows = {
            q: bench.table.add(
                Comparison(
                    f"{label}, {q} ms",
                    baseline="direct SMTP send → inbox",
                    higher_is_better=False,
                    unit="ms",
                    limit=100.0 if (q == "p99" and per_second >= 50) else None,
                )
            )
            for q in ("p50", "p99")
        }
        if per_second < 10:
            bench.table.notes.append(
                f"at {per_second}/s a phase sends {round(per_second * seconds)} messages:"
                " its p99 is close to its largest latency"
            )
        for pair in range(bench.table.pairs):
            for target in _order(pair, "direct", "herald"):
                prefix = f"{target[0]}{uuid.uuid4().hex[:10]}"
                if target == "direct":
                    result = await bench.load.run(
                        kind="smtp",
                        port=bench.sink_port,
                        rate=per_second,
                        seconds=seconds,
                        prefix=prefix,
                    )
                else:
                    result = await bench.load.run(
                        kind="open",
                        target="graphql-register",
                        port=herald.port,
                        rate=per_second,
                        seconds=seconds,
                        prefix=prefix,
                    )
                    bench.check(f"register at {per_second}/s", result)
                answered: dict[str, float] = result["answered"]
                arrived = await bench.inbox.wait_for(list(answered))
                if len(arrived) < len(answered):
                    bench.problems.append(
                        f"{target} at {per_second}/s: {len(answered) - len(arrived)} of "
                        f"{len(answered)} messages never reached the sink"
                    )
                latencies = [(arrived[a] - t) * 1000 for a, t in answered.items() if a in arrived]
                if len(latencies) < 2:
                    raise RuntimeError(f"{target} at {per_second}/s: {len(latencies)} messages")
                q = statistics.quantiles(latencies, n=100, method="inclusive")
                values = {"p50": q[49], "p99": q[98]}
                for name, row in rows.items():
                    (row.baseline_values if target == "direct" else row.herald_values).append(
                        values[name]
                    )
                harness.progress(
                    f"  [3 @{_scale(users)}] {per_second}/s pair {pair + 1}/{bench.table.pairs}"
                    f" {target:6}: p50 {values['p50']:6.1f} ms  p99 {values['p99']:6.1f} ms"
                    f"  ({len(latencies)} messages)"
                )
                if target == "herald":
                    processes.wait_deliveries(bench.url)
                    bench.reset()


async def _warm_worker(bench: Bench, herald: harness.Process) -> None:
    result = await bench.load.run(
        kind="open",
        target="graphql-register",
        port=herald.port,
        rate=5,
        seconds=1,
        prefix=f"warm{uuid.uuid4().hex[:6]}",
    )
    arrived = await bench.inbox.wait_for(list(result["answered"]), timeout=30)
    if len(arrived) < len(result["answered"]):
        raise RuntimeError(f"herald worker sent nothing: see {bench.env.logs / 'worker.log'}")
    processes.wait_deliveries(bench.url)
    bench.reset()


async def run(args: argparse.Namespace) -> Table:
    timing = QUICK if args.quick else Timing()
    pairs = args.pairs or (2 if args.quick else 5)
    mark = datetime.now(UTC)
    sink_port = devmail.free_port()
    handle, arrivals = tempfile.mkstemp(prefix="herald-bench-inbox-")
    os.close(handle)
    sink = subprocess.Popen(
        [sys.executable, "-m", "bench.inbox", "--port", str(sink_port), "--out", arrivals]
    )
    table = Table(pairs=pairs)
    load = processes.LoadGenerator()
    await load.start()
    try:
        async with harness.environment(**CHEAP, SMTP_PORT=str(sink_port)) as env:
            bench = Bench(
                env=env,
                load=load,
                inbox=processes.Inbox(arrivals),
                sink_port=sink_port,
                mark=mark,
                timing=timing,
                connections=args.connections,
                table=table,
            )
            production = {k: v for k, v in env.env.items() if k not in PRODUCTION_HASHING}
            production_env = dataclasses.replace(
                env, env=production, settings=Settings.from_env(production), processes=[]
            )
            scales = [0, 10_000] + ([1_000_000] if args.million else [])
            async with processes.serving(env) as (herald, bare):
                for users in scales:
                    if users:
                        harness.progress(f"populating: {users:,} existing users …")
                        seconds = population.grow(bench.url, users, mark)
                        table.notes.append(
                            f"populating {users:,} existing users (users, deliveries, 3 steps"
                            f" each; VACUUM ANALYZE included) took {seconds:.1f} s"
                        )
                    harness.progress(f"figure 1 at {_scale(users)} existing users")
                    await writes(bench, herald, bare, users)
                    if users == 0:
                        harness.progress("figure 2: production argon2id")
                        async with processes.serving(production_env) as (prod_herald, prod_bare):
                            await hashing(bench, prod_herald, prod_bare)
                    harness.progress(f"figure 3 at {_scale(users)} existing users")
                    with processes.worker(env, args.worker_concurrency):
                        await _warm_worker(bench, herald)
                        rates = (1, 50) if users == 0 else (50,)
                        await to_inbox(bench, herald, rates, users)
                harness.progress(f"plans at {_scale(scales[-1])} existing users")
                table.plans = await population.hot_plans(env.settings)
                table.plans_scale = _scale(scales[-1])
            table.problems = bench.problems
    finally:
        await load.stop()
        sink.terminate()
        sink.wait(timeout=10)
        os.unlink(arrivals)
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--pairs", type=int, help="A/B pairs per figure (default 5; 2 with --quick)"
    )
    parser.add_argument("--quick", action="store_true", help="short phases, for development")
    parser.add_argument(
        "--million", action="store_true", help="also run over 10^6 existing users (slow to build)"
    )
    parser.add_argument(
        "--connections", type=int, default=16, help="clients in figure 1 (default %(default)s)"
    )
    parser.add_argument(
        "--worker-concurrency",
        type=int,
        default=4,
        help="herald worker --concurrency in figure 3 (default %(default)s, as herald worker)",
    )
    args = parser.parse_args()
    table = asyncio.run(run(args))
    print(table.render(args))


if __name__ == "__main__":
    main()
