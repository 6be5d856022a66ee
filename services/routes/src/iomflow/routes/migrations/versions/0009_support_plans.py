"""Issue 16 in routes: communities' themes (a prevention community is one of the
burnout_prevention theme); the read models of mentoring pairs, the practices (the bank
drafting cites) and organisations (flagged schools); the support plans of low-results
schools

Revision ID: 0009_support_plans
Revises: 0008_activities
Create Date: 2026-12-07 18:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_support_plans"
down_revision: str | None = "0008_activities"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("communities", schema=None) as batch_op:
        batch_op.add_column(sa.Column("themes", sa.JSON(), server_default="[]", nullable=False))

    op.create_table(
        "mentoring_pairs",
        sa.Column("pair_id", sa.String(length=100), nullable=False),
        sa.Column("organization_id", sa.String(length=100), nullable=False),
        sa.Column("municipality_id", sa.String(length=100), nullable=False),
        sa.Column("mentor_id", sa.String(length=100), nullable=False),
        sa.Column("mentee_id", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("focus", sa.String(length=500), server_default="", nullable=False),
        sa.Column("starts_on", sa.Date(), nullable=False),
        sa.Column("ends_on", sa.Date(), nullable=True),
        sa.PrimaryKeyConstraint("pair_id"),
    )
    with op.batch_alter_table("mentoring_pairs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_mentoring_pairs_mentee_id"), ["mentee_id"])

    op.create_table(
        "practices",
        sa.Column("practice_id", sa.String(length=100), nullable=False),
        sa.Column("title", sa.String(length=500), nullable=False),
        sa.Column("organization_id", sa.String(length=100), nullable=False),
        sa.Column("municipality_id", sa.String(length=100), nullable=False),
        sa.Column("competencies", sa.JSON(), nullable=False),
        sa.Column("themes", sa.JSON(), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.PrimaryKeyConstraint("practice_id"),
    )

    op.create_table(
        "organizations",
        sa.Column("organization_id", sa.String(length=100), nullable=False),
        sa.Column("municipality_id", sa.String(length=100), nullable=False),
        sa.Column("name", sa.String(length=500), nullable=False),
        sa.Column("low_results", sa.Boolean(), server_default="0", nullable=False),
        sa.Column("unfavorable_conditions", sa.Boolean(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("organization_id"),
    )

    op.create_table(
        "support_plans",
        sa.Column("plan_id", sa.String(length=100), nullable=False),
        sa.Column("organization_id", sa.String(length=100), nullable=False),
        sa.Column("municipality_id", sa.String(length=100), nullable=False),
        sa.Column("methodist_id", sa.String(length=100), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("starts_on", sa.Date(), nullable=False),
        sa.Column("actions", sa.JSON(), nullable=False),
        sa.Column("closed_on", sa.Date(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("plan_id"),
    )
    with op.batch_alter_table("support_plans", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_support_plans_organization_id"), ["organization_id"])
        batch_op.create_index(batch_op.f("ix_support_plans_methodist_id"), ["methodist_id"])
        batch_op.create_index(
            "uq_support_plans_one_active_per_organization",
            ["organization_id"],
            unique=True,
            sqlite_where=sa.text("status = 'active'"),
            postgresql_where=sa.text("status = 'active'"),
        )


def downgrade() -> None:
    op.drop_table("support_plans")
    op.drop_table("organizations")
    op.drop_table("practices")
    op.drop_table("mentoring_pairs")
    with op.batch_alter_table("communities", schema=None) as batch_op:
        batch_op.drop_column("themes")
