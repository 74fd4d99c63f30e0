"""Where a ``register`` request spends its time in the server: py-spy samples
of ``herald serve`` (or the bare baseline) under figure 1's load.

    .venv/bin/pip install py-spy      (not a dependency of Herald)
    .venv/bin/python -m bench.profile_register [--target herald|bare] [--seconds 15]

Prints the share of samples by package (the leaf frame's file), the
functions with the most samples of their own, and the inclusive share of a
few frames that mark the stages of a request. The collapsed stacks are kept
(``--out``) for a flame graph.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

from bench import harness
from bench.processes import BARE, LoadGenerator
from bench.register import CHEAP

# The package that owns a leaf frame, by the first of these found in its file.
PACKAGES = (
    ("argon2", "(argon2/"),
    ("strawberry", "(strawberry/"),
    ("graphql-core", "(graphql/"),
    ("sqlalchemy", "(sqlalchemy/"),
    ("psycopg", "(psycopg/"),
    ("procrastinate", "(procrastinate/"),
    ("starlette", "(starlette/"),
    ("uvicorn", "(uvicorn/"),
    ("email-validator", "(email_validator/"),
    ("itsdangerous", "(itsdangerous/"),
    ("json", "(json/"),
    ("asyncio", "(asyncio/"),
    ("Herald api/", "(api/"),
    ("Herald domain/", "(domain/"),
    ("Herald infra/", "(infra/"),
    ("bench/", "(bench/"),
)

# Frames whose inclusive share marks a stage of a request: (stage, function, file).
STAGES = (
    ("strawberry's HTTP view (GraphQL included)", "run", "strawberry/http/async_base_view.py"),
    ("GraphQL parse", "parse", "graphql/language/parser.py"),
    ("GraphQL validate", "validate", "graphql/validation/validate.py"),
    ("use case domain.accounts.register", "register", "domain/accounts.py"),
    ("SQLAlchemy AsyncSession.execute", "execute", "sqlalchemy/ext/asyncio/session.py"),
    ("AsyncSession.commit", "commit", "sqlalchemy/ext/asyncio/session.py"),
    ("procrastinate defer", "defer_async", "procrastinate/"),
    ("address validation", "validate_email", "email_validator/"),
    ("argon2 hash call (event loop side)", "hash", "infra/passwords.py"),
    ("JSON encode", "encode", "json/encoder.py"),
)


def owner(frame: str) -> str:
    for name, marker in PACKAGES:
        if marker in frame:
            return name
    return "other (standard library, mostly)"


GREENLET = "SQLAlchemy's sync layer (in its greenlets)"


def _named(frame: str, function: str, file: str) -> bool:
    name, _, where = frame.partition(" (")
    return (name == function or name.endswith("." + function)) and file in where


def _table(title: str, rows: list[tuple[str, int]], total: int) -> list[str]:
    return ["", f"| {title} | share |", "|---|---|"] + [
        f"| {name} | {n / total:.1%} |" for name, n in rows
    ]


def _lines(stacks: Path) -> list[str]:
    return stacks.read_bytes().decode(errors="replace").split("\n")


def summarise(stacks: Path) -> str:
    """Shares of the event loop's thread (where GraphQL, SQLAlchemy and psycopg
    run); the other threads (argon2's pool) are listed apart."""
    loop_total = loop_idle = 0
    others: collections.Counter[str] = collections.Counter()
    by_package: collections.Counter[str] = collections.Counter()
    by_function: collections.Counter[str] = collections.Counter()
    by_stage: collections.Counter[str] = collections.Counter()
    for line in _lines(stacks):
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue  # a piece of a frame whose generated source spans lines
        count = int(count_text)
        frames = stack.split(";")
        # Stacks of the pool's threads start in threading; every other stack
        # is the main thread's: the event loop's, or a greenlet's that
        # SQLAlchemy's asyncio layer runs on it (those start at the greenlet).
        if frames[0].startswith("Thread._bootstrap ("):
            others[frames[-1]] += count
            continue
        if not any("(asyncio/runners.py)" in f for f in frames):
            by_stage[GREENLET] += count
        loop_total += count
        if _named(frames[-1], "run", "asyncio/runners.py"):
            loop_idle += count  # uvloop waiting for I/O, in C below this frame
            continue
        by_package[owner(frames[-1])] += count
        by_function[frames[-1]] += count
        for name, function, file in STAGES:
            if any(_named(f, function, file) for f in frames):
                by_stage[name] += count
    if not loop_total:
        return "no samples of the event loop"
    busy = loop_total - loop_idle
    lines = [
        f"event loop thread: {loop_total} samples, busy {busy / loop_total:.1%} "
        f"(idle {loop_idle / loop_total:.1%}); shares below are of its busy samples"
    ]
    lines += _table("package (leaf frame)", by_package.most_common(14), busy)
    stages = [(n, by_stage[n]) for n, *_ in STAGES] + [(GREENLET, by_stage[GREENLET])]
    lines += _table("stage (inclusive; greenlet stacks lack their callers)", stages, busy)
    lines += _table(
        "function (own samples)", [(f"`{n}`", c) for n, c in by_function.most_common(25)], busy
    )
    lines += _table(
        "other threads, leaf function (share of the loop's samples)",
        [(f"`{n}`", c) for n, c in others.most_common(6)],
        loop_total,
    )
    return "\n".join(lines)


async def main(target: str, seconds: float, connections: int, out: Path, gil: bool) -> None:
    spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if spy is None:
        raise SystemExit("py-spy is not installed: .venv/bin/pip install py-spy")
    load = LoadGenerator()
    await load.start()
    try:
        async with harness.environment(**CHEAP) as env:
            server = env.start_serve() if target == "herald" else env.start_process(BARE, "bare")
            kind = "graphql-register" if target == "herald" else "bare-register"
            warm = dict(kind="closed", target=kind, port=server.port, connections=connections)
            await load.run(**warm, warmup=0, seconds=2, prefix=uuid.uuid4().hex[:8])
            recorder = subprocess.Popen(
                [
                    spy,
                    "record",
                    "--pid",
                    str(server.popen.pid),
                    "--duration",
                    str(int(seconds)),
                    "--rate",
                    "250",
                    "--format",
                    "raw",
                    "--output",
                    str(out),
                    "--nonblocking",
                    "--nolineno",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            result = await load.run(
                **warm, warmup=0.5, seconds=seconds, prefix=uuid.uuid4().hex[:8]
            )
            recorder.wait(timeout=seconds + 30)
    finally:
        await load.stop()
    print(
        f"\n{target}: {result['rate']:.1f} register/s over {seconds:.0f} s, "
        f"{connections} connections; stacks in {out}\n"
    )
    print(summarise(out))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--target", choices=("herald", "bare"), default="herald")
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument(
        "--out", type=Path, default=Path(tempfile.gettempdir()) / "herald-register.stacks"
    )
    parser.add_argument(
        "--gil", action="store_true", help="sample only the thread holding the GIL (py-spy --gil)"
    )
    args = parser.parse_args()
    asyncio.run(main(args.target, args.seconds, args.connections, args.out, args.gil))
