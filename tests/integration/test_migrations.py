"""Migrations: from empty, twice, and in step with the code's tables."""

from __future__ import annotations

import psycopg
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from infra import db, migrate

HEAD = ScriptDirectory.from_config(migrate.alembic_config()).get_current_head()
TABLES = "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1"


def test_from_empty_then_again_is_a_no_op(empty_database_url: str) -> None:
    assert migrate.upgrade(empty_database_url) == HEAD
    with psycopg.connect(empty_database_url) as conn:
        before = conn.execute(TABLES).fetchall()
    assert migrate.upgrade(empty_database_url) == HEAD
    with psycopg.connect(empty_database_url) as conn:
        after = conn.execute(TABLES).fetchall()
    assert before == after
    names = {name for (name,) in after}
    assert {"users", "email_deliveries", "email_cooldowns", "procrastinate_jobs"} <= names


def test_the_migrated_schema_matches_the_code(database_url: str) -> None:
    engine = sa.create_engine(db.sqlalchemy_url(database_url), poolclass=sa.NullPool)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection,
                opts={
                    "include_name": lambda name, type_, parent: (
                        not (name or "").startswith("procrastinate")
                    )
                },
            )
            assert compare_metadata(context, db.metadata) == []
    finally:
        engine.dispose()
