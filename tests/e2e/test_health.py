"""``/healthz`` tells a load balancer whether the database answers."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import httpx

from infra import devmail
from tests import support
from tests.conftest import with_database
from tests.e2e.conftest import HERALD, StartHerald


def test_healthz_is_503_while_the_database_is_unreachable(
    pg_server_url: str, tmp_path: Path
) -> None:
    port = devmail.free_port()
    missing = with_database(pg_server_url, "herald_no_such_database")
    env = {**os.environ, **support.environment(missing)}
    with (tmp_path / "serve.log").open("wb") as out:
        serve = subprocess.Popen(
            [HERALD, "serve", "--port", str(port)], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
                break
            except httpx.HTTPError:
                assert serve.poll() is None and time.monotonic() < deadline
                time.sleep(0.1)
        assert response.status_code == 503
        assert response.json() == {"status": "database unavailable"}
        # The database error itself goes to the log, not to the caller.
        assert "herald_no_such_database" not in response.text
    finally:
        serve.terminate()
        assert serve.wait(timeout=20) == 0


def test_healthz_reports_the_subscription_listener(start_herald: StartHerald) -> None:
    herald = start_herald(worker=False)
    deadline = time.monotonic() + 30
    while True:
        body = httpx.get(f"{herald.base_url}/healthz", timeout=5).json()
        if body == {"status": "ok", "listener": "connected"} or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert body == {"status": "ok", "listener": "connected"}
