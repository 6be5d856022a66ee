"""School teams of the projects («Школа Минпросвещения России»), kept from the registries,
and the consultations held for each of them month by month."""

from __future__ import annotations

from datetime import date

from sqlalchemy.ext.asyncio import AsyncSession

from iomflow.routes import repository
from iomflow.routes.domain import activities as rules
from iomflow.shared.readmodel import ReadModel

SCHOOL_TEAM = ReadModel(
    "school_team",
    repository.school_teams,
    "team_id",
    {
        c: c
        for c in (
            "team_id",
            "organization_id",
            "municipality_id",
            "project",
            "members",
            "methodists",
        )
    },
)
"""``registry.school_team.upserted`` / ``.removed``: what a team's activities are checked
against and counted for."""


async def consultations(session: AsyncSession, team_id: str, year: int) -> list[rules.Month]:
    """Per month of ``year``, the consultations held for the team."""
    days = await repository.find_team_consultations(
        session, team_id, date(year, 1, 1), date(year, 12, 31)
    )
    return rules.by_month(days, year)
