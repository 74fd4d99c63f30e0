"""Registration events for subscriptions; suppressed deliveries.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.alter_column("email_deliveries", "user_id", nullable=True)
    op.alter_column("email_deliveries", "recipient", nullable=True)
    op.add_column(
        "email_deliveries",
        sa.Column("suppressed", sa.Boolean, nullable=False, server_default=sa.false()),
    )
    op.drop_constraint("email_deliveries_status", "email_deliveries", type_="check")
    op.create_check_constraint(
        "email_deliveries_status",
        "email_deliveries",
        "status IN ('queued', 'sending', 'sent', 'failed', 'suppressed')",
    )
    op.create_index(
        "email_deliveries_pending",
        "email_deliveries",
        ["created_at"],
        postgresql_where=sa.text("status IN ('queued', 'sending')"),
    )
    op.create_table(
        "registration_events",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("registration_id", pg.UUID(as_uuid=True), nullable=False),
        sa.Column("step", sa.Text, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("will_retry", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("retry_at", sa.DateTime(timezone=True)),
        sa.Column("reason", sa.Text),
        sa.CheckConstraint(
            "step IN ('email_queued', 'email_sent', 'email_failed', 'email_verified')",
            name="registration_events_step",
        ),
    )
    op.create_index(
        "registration_events_registration", "registration_events", ["registration_id", "id"]
    )


def downgrade() -> None:
    op.drop_table("registration_events")
    op.drop_index("email_deliveries_pending", "email_deliveries")
    op.drop_constraint("email_deliveries_status", "email_deliveries", type_="check")
    op.create_check_constraint(
        "email_deliveries_status",
        "email_deliveries",
        "status IN ('queued', 'sending', 'sent', 'failed')",
    )
    op.drop_column("email_deliveries", "suppressed")
    op.alter_column("email_deliveries", "recipient", nullable=False)
    op.alter_column("email_deliveries", "user_id", nullable=False)
