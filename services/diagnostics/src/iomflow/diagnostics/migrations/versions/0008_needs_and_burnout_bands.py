"""needs: the answers to the questionnaire of educational needs and requests; teachers:
age_band and experience_band (the burnout analytics' breakdowns); held_results: the type of
the event held (a result or a needs answer)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-20 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "needs",
        sa.Column("response_id", sa.String(length=36), nullable=False),
        sa.Column("teacher_id", sa.String(length=100), nullable=False),
        sa.Column("organization_id", sa.String(length=100), nullable=False),
        sa.Column("municipality_id", sa.String(length=100), nullable=False),
        sa.Column("campaign_id", sa.String(length=100), nullable=False),
        sa.Column("external_id", sa.String(length=200), nullable=True),
        sa.Column("source", sa.String(length=200), nullable=False),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("answered_on", sa.Date(), nullable=False),
        sa.Column("competencies", sa.JSON(), nullable=False),
        sa.Column("themes", sa.JSON(), nullable=False),
        sa.Column("formats", sa.JSON(), nullable=False),
        sa.Column("submitted", sa.JSON(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("response_id"),
        sa.UniqueConstraint("source", "external_id", name="uq_needs_external_id"),
    )
    op.create_index("ix_needs_campaign", "needs", ["campaign_id"])
    op.create_index("ix_needs_teacher", "needs", ["teacher_id"])
    # Nullable: teachers announced before it are filled in when the registries send them again.
    with op.batch_alter_table("teachers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("age_band", sa.String(length=10), nullable=True))
        batch_op.add_column(sa.Column("experience_band", sa.String(length=10), nullable=True))
    with op.batch_alter_table("held_results", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "type",
                sa.String(length=60),
                nullable=False,
                server_default="diagnostics.result.submitted",
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("held_results", schema=None) as batch_op:
        batch_op.drop_column("type")
    with op.batch_alter_table("teachers", schema=None) as batch_op:
        batch_op.drop_column("experience_band")
        batch_op.drop_column("age_band")
    op.drop_index("ix_needs_teacher", table_name="needs")
    op.drop_index("ix_needs_campaign", table_name="needs")
    op.drop_table("needs")
