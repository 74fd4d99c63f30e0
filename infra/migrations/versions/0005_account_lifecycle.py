"""Sign-in sessions, locales, contested passwords, and link claims on deliveries.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("users", sa.Column("locale", sa.Text, nullable=False, server_default="en"))
    op.add_column(
        "users",
        sa.Column("password_contested", sa.Boolean, nullable=False, server_default=sa.false()),
    )
    op.add_column("email_deliveries", sa.Column("link_claims", pg.JSONB))
    op.add_column(
        "email_deliveries", sa.Column("locale", sa.Text, nullable=False, server_default="en")
    )
    op.create_table(
        "sessions",
        sa.Column("id", pg.UUID(as_uuid=True), primary_key=True),
        sa.Column(
            "user_id",
            pg.UUID(as_uuid=True),
            sa.ForeignKey("users.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("token_digest", sa.Text, nullable=False, unique=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("sessions_user", "sessions", ["user_id"])
    op.create_index("sessions_expires", "sessions", ["expires_at"])


def downgrade() -> None:
    op.drop_table("sessions")
    op.drop_column("email_deliveries", "locale")
    op.drop_column("email_deliveries", "link_claims")
    op.drop_column("users", "password_contested")
    op.drop_column("users", "locale")
