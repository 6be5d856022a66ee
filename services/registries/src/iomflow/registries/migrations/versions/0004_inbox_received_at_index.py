"""inbox: an index on received_at (the retention job removes old rows by it)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 08:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_inbox_received_at", "inbox", ["received_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_inbox_received_at", table_name="inbox")
