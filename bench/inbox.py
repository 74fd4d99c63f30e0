"""A loopback SMTP sink in its own process that records when each message arrived.

    python -m bench.inbox --port PORT --out FILE

Each accepted message appends one line per recipient to FILE:
``<recipient>\\t<time.time() at the end of DATA>``. Loopback processes share
one clock, so these wall times compare with the load generator's.
"""

from __future__ import annotations

import argparse
import signal
import threading
import time
from typing import TextIO

from aiosmtpd.smtp import SMTP, Envelope, Session

from infra import devmail


class ArrivalLog:
    def __init__(self, out: TextIO) -> None:
        self.out = out

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        arrived = time.time()
        self.out.write("".join(f"{rcpt.lower()}\t{arrived:.6f}\n" for rcpt in envelope.rcpt_tos))
        # Flushed per message: the benchmark reads the file while we run.
        self.out.flush()
        return "250 OK"


def read_arrivals(path: str, offset: int, into: dict[str, float]) -> int:
    """Add the lines written since ``offset`` to ``into``; returns the new offset."""
    with open(path, "rb") as log:
        log.seek(offset)
        data = log.read()
    complete = data.rpartition(b"\n")[0]
    for line in complete.decode().splitlines():
        recipient, _, arrived = line.partition("\t")
        into[recipient] = float(arrived)
    return offset + len(complete) + (1 if complete else 0)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    with open(args.out, "a", encoding="utf-8") as out:
        controller = devmail.start(ArrivalLog(out), port=args.port)
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        stop.wait()
        controller.stop()
