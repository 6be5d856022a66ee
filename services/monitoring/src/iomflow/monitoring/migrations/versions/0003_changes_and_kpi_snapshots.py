"""marks of changed projections, the KPI snapshot, facts indexed by key and kind

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Both start empty: the first look of the snapshot job finds no snapshot and computes
    # one from the projections as they are.
    op.create_table(
        "changes",
        sa.Column("consumer", sa.String(length=200), nullable=False),
        sa.Column("stream", sa.String(length=200), nullable=False),
        sa.Column("changes", sa.BigInteger(), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("consumer", "stream", name=op.f("pk_changes")),
    )
    op.create_table(
        "kpi_snapshots",
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("version", sa.String(length=200), nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("answer", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_kpi_snapshots")),
    )
    # An end names a fact's key and kind: one index for both (the key's alone is its prefix).
    with op.batch_alter_table("facts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_facts_key"))
        batch_op.create_index("ix_facts_key_kind", ["key", "kind"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("facts", schema=None) as batch_op:
        batch_op.drop_index("ix_facts_key_kind")
        batch_op.create_index(batch_op.f("ix_facts_key"), ["key"], unique=False)
    op.drop_table("kpi_snapshots")
    op.drop_table("changes")
