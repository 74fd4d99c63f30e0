"""Alembic environment: runs on the connection that ``infra.migrate`` hands over."""

from __future__ import annotations

from alembic import context

from infra import db

connection = context.config.attributes["connection"]
context.configure(
    connection=connection, target_metadata=db.metadata, transaction_per_migration=True
)
with context.begin_transaction():
    context.run_migrations()
