"""A loopback SMTP sink in its own process, for the delivery benchmark.

python -m bench.sink --port PORT
"""

from __future__ import annotations

import argparse
import signal
import threading

from aiosmtpd.smtp import SMTP, Envelope, Session

from infra import devmail


class CountingSink:
    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        return "250 OK"


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    controller = devmail.start(CountingSink(), port=args.port)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    controller.stop()
