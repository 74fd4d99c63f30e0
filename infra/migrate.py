"""``herald migrate``: Alembic to head, procrastinate's schema included."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from infra import db

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# Any fixed number: only Herald's migrations take this advisory lock.
_LOCK_ID = 7_262_112


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def upgrade(database_url: str) -> str | None:
    """Bring the schema to head; running it again is a no-op. Returns the revision."""
    engine = sa.create_engine(db.sqlalchemy_url(database_url), poolclass=sa.NullPool)
    try:
        with engine.connect() as connection:
            # Two processes starting together (api and worker) must not both migrate.
            connection.execute(sa.text("SELECT pg_advisory_lock(:id)"), {"id": _LOCK_ID})
            connection.commit()
            try:
                config = alembic_config()
                config.attributes["connection"] = connection
                command.upgrade(config, "head")
                connection.commit()
                revision = connection.execute(
                    sa.text("SELECT version_num FROM alembic_version")
                ).scalar()
            finally:
                connection.execute(sa.text("SELECT pg_advisory_unlock(:id)"), {"id": _LOCK_ID})
                connection.commit()
    finally:
        engine.dispose()
    return None if revision is None else str(revision)
