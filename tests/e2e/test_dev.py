"""``herald dev`` (what ``make run`` starts): embedded PostgreSQL, mail catcher, API
and worker in one process, with no configuration at all."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx

from infra import devmail
from tests.e2e.conftest import HERALD
from tests.e2e.test_signup import REGISTER, VERIFY
from tests.e2e.wsclient import session


async def test_dev_runs_the_whole_flow_on_one_machine_and_stops_cleanly(tmp_path: Path) -> None:
    port = devmail.free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "SMTP_HOST"}}
    env.update(PASSWORD_HASH_TIME_COST="1", PASSWORD_HASH_MEMORY_KIB="1024")
    log = tmp_path / "dev.log"
    # A short state directory: the embedded server's socket lives in it.
    state = Path(os.environ.get("TMPDIR", "/tmp")) / f"herald-dev-{port}"
    with log.open("wb") as out:
        dev = subprocess.Popen(
            [HERALD, "dev", "--port", str(port), "--state-dir", str(state)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert dev.poll() is None, log.read_text()
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        assert f"GraphiQL   {base}/graphql" in log.read_text()
        assert httpx.get(f"{base}/graphql", headers={"accept": "text/html"}).status_code == 200

        variables = {"email": "ann@example.com", "password": "pass word"}
        query = {"query": REGISTER, "variables": variables}
        registered = httpx.post(f"{base}/graphql", json=query, timeout=30).json()
        assert registered["data"]["register"]["__typename"] == "RegisterSuccess"

        page = httpx.get(f"{base}/dev/mail", timeout=10)
        assert page.status_code == 200 and "Mailbox" in page.text
        messages: list[dict[str, Any]] = []
        while not messages:
            messages = httpx.get(f"{base}/dev/mail.json", timeout=10).json()
            assert time.monotonic() < deadline + 30
            time.sleep(0.2)
        [message] = messages
        assert message["to"] == ["ann@example.com"]
        found = re.search(r"/verify-email\?token=(\S+)", message["text"])
        assert found is not None, message["text"]
        # The mailbox follows the message's registration, as its page does.
        async with session(base) as ws:
            operation = await ws.subscribe(message["registrationToken"])
            assert await ws.collect(operation, 2) == ["EmailQueued", "EmailSent"]
            verify = {"query": VERIFY, "variables": {"token": found.group(1)}}
            verified = httpx.post(f"{base}/graphql", json=verify, timeout=30).json()
            assert verified["data"]["verifyEmail"]["__typename"] == "VerifyEmailSuccess"
            assert await ws.collect(operation, 1) == ["EmailVerified"]
    finally:
        dev.send_signal(signal.SIGINT)
        try:
            code = dev.wait(timeout=30)
        except subprocess.TimeoutExpired:
            dev.kill()
            raise
        subprocess.run(["rm", "-rf", str(state)], check=False)
    assert code == 0, log.read_text()
    assert "stopped." in log.read_text()
