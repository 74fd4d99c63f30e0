"""Shared fixtures: a real PostgreSQL for every test that needs one.

``TEST_DATABASE_URL`` (or ``DATABASE_URL``) points at a server when set;
otherwise the session starts an embedded one. A template database is migrated
once and cloned per test, which keeps real-database tests fast and isolated.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from infra import embedded, migrate
from infra.settings import database_url as normalize_url


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    configured = os.environ.get("TEST_DATABASE_URL") or os.environ.get("DATABASE_URL")
    if configured:
        yield normalize_url(configured)
        return
    # A short path: the server's Unix socket lives in its data directory.
    data_dir = Path(tempfile.mkdtemp(prefix="herald-pg-"))
    server, url = embedded.start_postgres(data_dir, delete_on_exit=True)
    yield url
    del server


@pytest.fixture(scope="session")
def template_database(pg_server_url: str) -> Iterator[str]:
    name = f"herald_template_{os.getpid()}"
    with psycopg.connect(pg_server_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.execute(f'CREATE DATABASE "{name}"')
    migrate.upgrade(with_database(pg_server_url, name))
    yield name
    with psycopg.connect(pg_server_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _scratch_database(server_url: str, prefix: str, template: str | None) -> Iterator[str]:
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    clause = f' TEMPLATE "{template}"' if template else ""
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"{clause}')
    yield with_database(server_url, name)
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def database_url(pg_server_url: str, template_database: str) -> Iterator[str]:
    """A freshly migrated database of this test's own."""
    yield from _scratch_database(pg_server_url, "herald_test", template_database)


@pytest.fixture
def empty_database_url(pg_server_url: str) -> Iterator[str]:
    """A database with no schema at all, for migration tests."""
    yield from _scratch_database(pg_server_url, "herald_empty", None)
