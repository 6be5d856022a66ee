"""Activities held outside a route (events, seminars, webinars, consultations, community
meetings) and their attendance; the read model of the registries' school teams

Revision ID: 0008_activities
Revises: 0007
Create Date: 2026-12-20 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_activities"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "school_teams",
        sa.Column("team_id", sa.String(length=100), nullable=False),
        sa.Column("organization_id", sa.String(length=100), nullable=False),
        sa.Column("municipality_id", sa.String(length=100), nullable=False),
        sa.Column("project", sa.String(length=40), nullable=False),
        sa.Column("members", sa.JSON(), nullable=False),
        sa.Column("methodists", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("team_id", name=op.f("pk_school_teams")),
    )
    op.create_table(
        "activities",
        sa.Column("activity_id", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("title", sa.String(length=500), nullable=False),
        sa.Column("level", sa.String(length=20), nullable=False),
        sa.Column("organiser_id", sa.String(length=100), nullable=False),
        sa.Column("format", sa.String(length=20), nullable=False),
        sa.Column("held_on", sa.Date(), nullable=False),
        sa.Column("hours", sa.Integer(), nullable=True),
        sa.Column("municipality_id", sa.String(length=100), nullable=True),
        sa.Column("organization_id", sa.String(length=100), nullable=True),
        sa.Column("competencies", sa.JSON(), nullable=False),
        sa.Column("themes", sa.JSON(), nullable=False),
        sa.Column("target", sa.String(length=20), nullable=False),
        sa.Column("team_id", sa.String(length=100), nullable=True),
        sa.Column("community_id", sa.String(length=100), nullable=True),
        sa.Column("methodist_id", sa.String(length=100), nullable=True),
        sa.Column("project", sa.String(length=40), nullable=True),
        sa.Column("attendees", sa.Integer(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("activity_id", name=op.f("pk_activities")),
    )
    op.create_index(op.f("ix_activities_held_on"), "activities", ["held_on"], unique=False)
    op.create_index(op.f("ix_activities_team_id"), "activities", ["team_id"], unique=False)
    op.create_table(
        "attendances",
        sa.Column("attendance_id", sa.String(length=201), nullable=False),
        sa.Column("activity_id", sa.String(length=100), nullable=False),
        sa.Column("teacher_id", sa.String(length=100), nullable=False),
        sa.Column("organization_id", sa.String(length=100), nullable=False),
        sa.Column("municipality_id", sa.String(length=100), nullable=False),
        sa.Column("route_id", sa.String(length=36), nullable=True),
        sa.Column("step_id", sa.String(length=40), nullable=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("attendance_id", name=op.f("pk_attendances")),
    )
    op.create_index(
        op.f("ix_attendances_activity_id"), "attendances", ["activity_id"], unique=False
    )
    op.create_index(op.f("ix_attendances_teacher_id"), "attendances", ["teacher_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_attendances_teacher_id"), table_name="attendances")
    op.drop_index(op.f("ix_attendances_activity_id"), table_name="attendances")
    op.drop_table("attendances")
    op.drop_index(op.f("ix_activities_team_id"), table_name="activities")
    op.drop_index(op.f("ix_activities_held_on"), table_name="activities")
    op.drop_table("activities")
    op.drop_table("school_teams")
