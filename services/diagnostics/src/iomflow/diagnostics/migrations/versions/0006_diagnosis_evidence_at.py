"""diagnoses: evidence_at, when the latest result a diagnosis used was taken

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable: diagnoses completed before it carry none (their events had none either).
    with op.batch_alter_table("diagnoses", schema=None) as batch_op:
        batch_op.add_column(sa.Column("evidence_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("diagnoses", schema=None) as batch_op:
        batch_op.drop_column("evidence_at")
