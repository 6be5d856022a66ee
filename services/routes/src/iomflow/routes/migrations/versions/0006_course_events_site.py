"""course_events: the site of an internship (courses.internship.completed is kept there too)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-10 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("course_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("site_id", sa.String(length=100), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("course_events", schema=None) as batch_op:
        batch_op.drop_column("site_id")
