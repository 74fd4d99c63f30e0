"""The password of a repeated registration of a verified address.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("users", sa.Column("registration_attempt_hash", sa.Text))


def downgrade() -> None:
    op.drop_column("users", "registration_attempt_hash")
