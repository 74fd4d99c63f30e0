"""The register benchmark's load generator, in a process of its own.

    python -m bench.load      (one JSON phase per line on stdin, one JSON result per line out)

It speaks just enough HTTP/1.1 over kept-alive loopback connections to drive
uvicorn, far cheaper per request than a full client: on two cores, every
cycle the generator spends is one the server under test does not get. Every
target of a comparison is driven by this same code.

Phases (``kind``):

- ``closed``: ``connections`` clients, each sending its next request as soon
  as the last is answered, for ``warmup`` then ``seconds``; counts the answers
  that finished inside the measured window. With ``probe``, one more
  connection asks the trivial query ``probe_rate`` times a second meanwhile.
- ``probe``: only the probe, on an otherwise idle server.
- ``open``: ``rate`` registrations a second for ``seconds``, on a schedule that
  does not wait for answers; returns each address with the wall time its
  answer arrived.
- ``smtp``: ``rate`` messages a second straight to the sink over one kept
  connection (aiosmtplib); returns each recipient with the wall time its send
  began.
"""

from __future__ import annotations

import asyncio
import email.message
import json
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiosmtplib

PASSWORD = "correct horse battery staple"
# One document with variables, as a real client sends it: an address written
# into the document itself would make every request a new document to parse.
REGISTER = (
    "mutation Register($input: RegisterInput!) { register(input: $input) "
    "{ __typename ... on RegisterSuccess { registrationToken } } }"
)
POLICY = "{ passwordPolicy { minLength } }"


@dataclass(frozen=True)
class Target:
    path: str
    body: Callable[[str], bytes]
    success: bytes  # present in every successful answer


TARGETS = {
    "graphql-register": Target(
        "/graphql",
        lambda address: json.dumps(
            {"query": REGISTER, "variables": {"input": {"email": address, "password": PASSWORD}}}
        ).encode(),
        b'"registrationToken"',
    ),
    "bare-register": Target(
        "/register",
        lambda address: json.dumps({"email": address, "password": PASSWORD}).encode(),
        b'"registrationToken"',
    ),
    "bare-hash": Target(
        "/hash", lambda address: json.dumps({"password": PASSWORD}).encode(), b'"ok"'
    ),
    "graphql-policy": Target(
        "/graphql", lambda address: json.dumps({"query": POLICY}).encode(), b'"minLength"'
    ),
}


class Connection:
    """One kept-alive HTTP/1.1 connection to a loopback server."""

    # uvicorn closes a connection idle for 5 s (its keep-alive timeout): one
    # idle for this long is replaced before it is used, not found closed.
    MAX_IDLE = 2.0

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.last_used = 0.0

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        if self.writer is not None and time.monotonic() - self.last_used > self.MAX_IDLE:
            self.close()
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self.reader is not None
        self.writer.write(
            b"POST %s HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
            b"content-length: %d\r\n\r\n%s" % (path.encode(), len(body), body)
        )
        head = await self.reader.readuntil(b"\r\n\r\n")
        length = None
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if length is None:
            raise RuntimeError("an answer without content-length: " + head.decode()[:200])
        answer = await self.reader.readexactly(length)
        self.last_used = time.monotonic()
        return int(head[9:12]), answer

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.reader = self.writer = None


def _quantiles(values: list[float]) -> dict[str, float | int]:
    if len(values) < 2:
        only = values[0] if values else float("nan")
        return {"p50": only, "p99": only, "count": len(values)}
    q = statistics.quantiles(values, n=100, method="inclusive")
    return {"p50": q[49], "p99": q[98], "count": len(values)}


async def _until(deadline: float) -> None:
    delay = deadline - time.perf_counter()
    if delay > 0:
        await asyncio.sleep(delay)


async def _probe(spec: dict[str, Any], start: float, stop: float) -> dict[str, float | int]:
    """The trivial query at a steady rate on its own connection; latencies in ms."""
    target = TARGETS["graphql-policy"]
    body = target.body("")
    connection = Connection(spec["probe_port"])
    latencies: list[float] = []
    failures = 0
    try:
        await connection.post(target.path, body)  # connect before measuring
        n = 0
        while (scheduled := start + n / spec["probe_rate"]) < stop:
            n += 1
            await _until(scheduled)
            sent = time.perf_counter()
            status, answer = await connection.post(target.path, body)
            latencies.append((time.perf_counter() - sent) * 1000)
            failures += status != 200 or target.success not in answer
    finally:
        connection.close()
    return {**_quantiles(latencies), "failures": failures}


async def closed(spec: dict[str, Any]) -> dict[str, Any]:
    target = TARGETS[spec["target"]]
    connections = [Connection(spec["port"]) for _ in range(spec["connections"])]
    begin = time.perf_counter()
    window_start = begin + spec["warmup"]
    window_end = window_start + spec["seconds"]
    latencies: list[float] = []
    failures: list[str] = []

    async def client(index: int, connection: Connection) -> None:
        n = 0
        while time.perf_counter() < window_end:
            address = f"{spec['prefix']}-{index}-{n}@load.example.com"
            n += 1
            sent = time.perf_counter()
            try:
                status, answer = await connection.post(target.path, target.body(address))
            except (OSError, asyncio.IncompleteReadError) as error:
                connection.close()  # the next request opens a new one
                status, answer = 0, repr(error).encode()
            done = time.perf_counter()
            if window_start <= done <= window_end:
                latencies.append((done - sent) * 1000)
                if status != 200 or target.success not in answer:
                    failures.append(f"{status} {answer[:200]!r}")

    probe: Awaitable[dict[str, float | int]] | None = None
    if spec.get("probe_rate"):
        probe = _probe(spec, window_start, window_end)
    try:
        results = await asyncio.gather(
            *(client(i, c) for i, c in enumerate(connections)),
            *([probe] if probe is not None else []),
        )
    finally:
        for connection in connections:
            connection.close()
    return {
        "rate": (len(latencies) - len(failures)) / spec["seconds"],
        "latency": _quantiles(latencies),
        "failures": len(failures),
        "failure_sample": failures[:3],
        "probe": results[-1] if probe is not None else None,
    }


async def probe_only(spec: dict[str, Any]) -> dict[str, Any]:
    start = time.perf_counter() + spec["warmup"]
    return {"probe": await _probe(spec, start, start + spec["seconds"])}


async def open_loop(spec: dict[str, Any]) -> dict[str, Any]:
    target = TARGETS[spec["target"]]
    idle: list[Connection] = []
    answered: dict[str, float] = {}
    latencies: list[float] = []
    failures: list[str] = []

    async def one(address: str) -> None:
        connection = idle.pop() if idle else Connection(spec["port"])
        sent = time.perf_counter()
        try:
            status, answer = await connection.post(target.path, target.body(address))
        except (OSError, asyncio.IncompleteReadError) as error:
            connection.close()
            failures.append(repr(error))
            return
        arrived = time.time()
        latencies.append((time.perf_counter() - sent) * 1000)
        idle.append(connection)
        if status == 200 and target.success in answer:
            answered[address] = arrived
        else:
            failures.append(f"{status} {answer[:200]!r}")

    # Warm a few connections so that connecting is not in the first figures.
    for connection in [Connection(spec["port"]) for _ in range(4)]:
        await connection.post(*_harmless())
        idle.append(connection)
    start = time.perf_counter() + 0.1
    tasks = []
    for n in range(round(spec["rate"] * spec["seconds"])):
        await _until(start + n / spec["rate"])
        address = f"{spec['prefix']}-{n}@load.example.com"
        tasks.append(asyncio.create_task(one(address)))
    await asyncio.gather(*tasks)
    for connection in idle:
        connection.close()
    return {
        "answered": answered,
        "latency": _quantiles(latencies),
        "failures": len(failures),
        "failure_sample": failures[:3],
    }


def _harmless() -> tuple[str, bytes]:
    target = TARGETS["graphql-policy"]
    return target.path, target.body("")


def _message(recipient: str) -> email.message.EmailMessage:
    # About the size and shape of Herald's verification email.
    message = email.message.EmailMessage()
    message["From"] = "Herald <bench@herald.test>"
    message["To"] = recipient
    message["Subject"] = "Confirm your email address"
    message.set_content("x" * 600)
    message.add_alternative("<p>" + "x" * 1200 + "</p>", subtype="html")
    return message


async def smtp_loop(spec: dict[str, Any]) -> dict[str, Any]:
    sent: dict[str, float] = {}
    lock = asyncio.Lock()
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=spec["port"], start_tls=False) as smtp:

        async def one(recipient: str) -> None:
            message = _message(recipient)
            sent[recipient] = time.time()  # waiting for the connection counts
            async with lock:
                await smtp.send_message(message)

        start = time.perf_counter() + 0.1
        tasks = []
        for n in range(round(spec["rate"] * spec["seconds"])):
            await _until(start + n / spec["rate"])
            tasks.append(asyncio.create_task(one(f"{spec['prefix']}-{n}@load.example.com")))
        await asyncio.gather(*tasks)
    return {"answered": sent, "failures": 0}


PHASES: dict[str, Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]] = {
    "closed": closed,
    "probe": probe_only,
    "open": open_loop,
    "smtp": smtp_loop,
}


def main() -> None:
    try:
        import uvloop

        run: Callable[[Awaitable[dict[str, Any]]], dict[str, Any]] = uvloop.run  # type: ignore[assignment]
    except ImportError:
        run = asyncio.run  # type: ignore[assignment]
    for line in sys.stdin:
        spec = json.loads(line)
        result = run(PHASES[spec["kind"]](spec))
        sys.stdout.write(json.dumps(result) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
