"""The operator's view of deliveries: manual retries, newest-first listing.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "email_deliveries",
        sa.Column("manual_retries", sa.Integer, nullable=False, server_default="0"),
    )
    # Keyset pagination, newest first, over all deliveries (the status index
    # serves the listing filtered by status).
    op.create_index("email_deliveries_created", "email_deliveries", ["created_at", "id"])


def downgrade() -> None:
    op.drop_index("email_deliveries_created", table_name="email_deliveries")
    op.drop_column("email_deliveries", "manual_retries")
