"""Email throughput: ``herald worker`` (claim, render, send, record), as one
process and as one per core, against a raw aiosmtplib loop over one
persistent connection, to the same separate-process SMTP sink, alternately in
the same run.

    .venv/bin/python -m bench.delivery [--emails 1000] [--pairs 5] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import asyncio
import email.message
import os
import statistics
import subprocess
import sys
import time

import aiosmtplib
import psycopg

from bench import harness
from domain import accounts
from infra import bootstrap, devmail

# One worker process, and one per core: the raw loop is one process.
PROCESSES = max(2, os.cpu_count() or 2)
TARGETS = ("raw", "herald", "herald-processes")


async def raw_loop(port: int, count: int) -> float:
    started = time.perf_counter()
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False) as smtp:
        for n in range(count):
            message = email.message.EmailMessage()
            message["From"] = "bench@herald.test"
            message["To"] = f"user{n}@example.com"
            message["Subject"] = "Confirm your email address"
            message.set_content("x" * 600)
            message.add_alternative("<p>" + "x" * 1200 + "</p>", subtype="html")
            await smtp.send_message(message)
    return count / (time.perf_counter() - started)


async def herald_worker(
    env: harness.Environment, port: int, count: int, concurrency: int, processes: int
) -> float:
    container = bootstrap.build(env.settings)
    try:
        # Queue the emails with the worker stopped: what is timed is the worker.
        offset = time.monotonic_ns()
        for n in range(count):
            command = accounts.Register(f"w{offset}-{n}@example.com", "correct horse")
            await accounts.register(command, container.accounts)
    finally:
        await container.close()
    with (env.logs / "worker.log").open("ab") as out:
        worker = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from api.cli import main; main()",
                "worker",
                "--concurrency",
                str(concurrency),
                "--processes",
                str(processes),
            ],
            env={**env.env, "SMTP_PORT": str(port)},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        with psycopg.connect(env.settings.database_url, autocommit=True) as conn:
            while True:
                [(waiting,)] = conn.execute(
                    "SELECT count(*) FROM email_deliveries WHERE status <> 'sent'"
                ).fetchall()
                if waiting == 0:
                    break
                if worker.poll() is not None:
                    raise RuntimeError("the worker exited: see " + str(env.logs))
                time.sleep(0.01)
            # From the first job started to the last email recorded as sent, as
            # the database saw them: the worker's start-up is not counted.
            [(elapsed,)] = conn.execute(
                "SELECT extract(epoch FROM max(d.sent_at) - min(e.at))::float"
                " FROM email_deliveries d JOIN procrastinate_events e"
                " ON e.job_id = d.job_id AND e.type = 'started'"
                " WHERE d.recipient LIKE %s",
                (f"w{offset}-%",),
            ).fetchall()
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    return count / float(elapsed)


async def main(emails: int, pairs: int, concurrency: int) -> None:
    port = devmail.free_port()
    sink = subprocess.Popen([sys.executable, "-m", "bench.sink", "--port", str(port)])
    time.sleep(1.5)
    try:
        async with harness.environment(
            PASSWORD_HASH_TIME_COST="1",
            PASSWORD_HASH_MEMORY_KIB="1024",
            SMTP_PORT=str(port),
            EMAILS_PER_MINUTE="1000000",
            PASSWORD_HASH_MAX_WAITING="100000",
            SMTP_POOL_SIZE=str(concurrency),
        ) as env:
            rates: dict[str, list[float]] = {target: [] for target in TARGETS}
            for pair in range(pairs):
                order = TARGETS if pair % 2 == 0 else TARGETS[::-1]
                for target in order:
                    if target == "raw":
                        rate = await raw_loop(port, emails)
                    else:
                        processes = PROCESSES if target == "herald-processes" else 1
                        rate = await herald_worker(env, port, emails, concurrency, processes)
                    rates[target].append(rate)
                    harness.progress(f"pair {pair + 1}/{pairs} {target:16}: {rate:7.1f} emails/s")
    finally:
        sink.terminate()
        sink.wait(timeout=10)
    raw = rates["raw"]
    print(
        f"\nEmail throughput, {emails} emails x {pairs} pairs, worker concurrency {concurrency};"
        " rates are medians over pairs, ratios the median of the per-pair ratios (range)\n"
    )
    print("| target | emails/s | ratio to the raw loop |")
    print("|---|---|---|")
    print(f"| raw aiosmtplib loop, one connection | {statistics.median(raw):.1f} | |")
    for target, label in (
        ("herald", "`herald worker`"),
        ("herald-processes", f"`herald worker --processes {PROCESSES}`"),
    ):
        # Pair by pair: the machine's speed drifts between pairs more than within one.
        ratios = [h / r for h, r in zip(rates[target], raw, strict=True)]
        print(
            f"| {label} | {statistics.median(rates[target]):.1f} |"
            f" **{statistics.median(ratios):.2f}** ({min(ratios):.2f} to {max(ratios):.2f}) |"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--emails", type=int, default=1000)
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    asyncio.run(main(args.emails, args.pairs, args.concurrency))
