"""Users, email deliveries, cooldowns, and procrastinate's schema.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op
from procrastinate.schema import SchemaManager
from sqlalchemy.dialects import postgresql as pg

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    # procrastinate's own schema (pinned to 3.10.x in pyproject.toml); later
    # procrastinate versions ship SQL migrations, applied by later revisions.
    # Straight to psycopg without parameters, so the '%' in its SQL is not
    # taken for a placeholder.
    driver = op.get_bind().connection.driver_connection
    assert driver is not None
    driver.execute(SchemaManager.get_schema())

    op.create_table(
        "users",
        sa.Column("id", pg.UUID(as_uuid=True), primary_key=True),
        sa.Column("email", sa.Text, nullable=False),
        sa.Column("password_hash", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("email_verified_at", sa.DateTime(timezone=True)),
        sa.Column("verification_nonce", sa.Integer, nullable=False, server_default="1"),
    )
    op.create_index("users_email_lower_key", "users", [sa.text("lower(email)")], unique=True)

    op.create_table(
        "email_deliveries",
        sa.Column("id", pg.UUID(as_uuid=True), primary_key=True),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column(
            "user_id",
            pg.UUID(as_uuid=True),
            sa.ForeignKey("users.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("registration_id", pg.UUID(as_uuid=True)),
        sa.Column("recipient", sa.Text, nullable=False),
        sa.Column("verification_nonce", sa.Integer),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_smtp_code", sa.Integer),
        sa.Column("last_error", sa.Text),
        sa.Column("message_id", sa.Text, nullable=False, unique=True),
        sa.Column("job_id", sa.BigInteger),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True)),
        sa.CheckConstraint(
            "status IN ('queued', 'sending', 'sent', 'failed')", name="email_deliveries_status"
        ),
    )
    op.create_index("email_deliveries_user_kind", "email_deliveries", ["user_id", "kind"])
    op.create_index("email_deliveries_registration", "email_deliveries", ["registration_id"])
    op.create_index("email_deliveries_status_created", "email_deliveries", ["status", "created_at"])

    op.create_table(
        "email_cooldowns",
        sa.Column("key", sa.Text, primary_key=True),
        sa.Column("until", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("email_cooldowns")
    op.drop_table("email_deliveries")
    op.drop_table("users")
