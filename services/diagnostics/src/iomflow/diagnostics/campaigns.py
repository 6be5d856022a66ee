"""Framework versions and campaigns: what a result is checked against."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from iomflow.diagnostics import domain, repository
from iomflow.shared.contracts import Instrument
from iomflow.shared.errors import Refused

DEFAULT_CAMPAIGN = "default"


# --- frameworks ------------------------------------------------------------------------------


async def register_framework(session: AsyncSession, framework: domain.Framework) -> None:
    """Keep every framework version in force at some time, so that each diagnosis's version
    can be read and exported later. A version is immutable: a changed file must raise it."""
    document = framework.model_dump(mode="json")
    known = await repository.framework_document(session, framework.version)
    if known is None:
        await repository.add_framework(session, framework.version, document, datetime.now(UTC))
    elif known != document:
        raise RuntimeError(
            f"Рамка компетенций версии «{framework.version}» уже применялась с другим "
            "содержанием: измените версию в файле рамки (framework version is immutable)."
        )


async def framework_at(session: AsyncSession, version: str) -> domain.Framework | None:
    document = await repository.framework_document(session, version)
    return None if document is None else domain.Framework.model_validate(document)


# --- campaigns -------------------------------------------------------------------------------


async def ensure_default_campaign(session: AsyncSession, framework: domain.Framework) -> None:
    """The standing campaign: results sent without a campaign (self-diagnosis all year)."""
    if await repository.get_campaign(session, DEFAULT_CAMPAIGN) is None:
        await repository.add_campaign(
            session,
            {
                "campaign_id": DEFAULT_CAMPAIGN,
                "name": "Постоянная диагностика (вне кампаний)",
                "starts_on": None,
                "ends_on": None,
                "municipalities": [],
                "organizations": [],
                "required": [i.value for i in framework.required_instruments],
                "status": "open",
                "created_at": datetime.now(UTC),
            },
        )


async def create_campaign(
    session: AsyncSession,
    *,
    campaign_id: str,
    name: str,
    starts_on: date | None,
    ends_on: date | None,
    municipalities: Sequence[str] = (),
    organizations: Sequence[str] = (),
    required: Sequence[Instrument] = (),
    framework: domain.Framework,
) -> Any:
    if await repository.get_campaign(session, campaign_id) is not None:
        raise Refused("campaign_exists", f"Кампания «{campaign_id}» уже существует.", 409)
    if starts_on and ends_on and ends_on < starts_on:
        raise Refused("bad_window", "Дата окончания кампании раньше даты начала.")
    await repository.add_campaign(
        session,
        {
            "campaign_id": campaign_id,
            "name": name,
            "starts_on": starts_on,
            "ends_on": ends_on,
            "municipalities": sorted(set(municipalities)),
            "organizations": sorted(set(organizations)),
            "required": [i.value for i in (required or framework.required_instruments)],
            "status": "open",
            "created_at": datetime.now(UTC),
        },
    )
    return await repository.get_campaign(session, campaign_id)


def in_target(campaign: Any, teacher: Any) -> bool:
    return (not campaign.municipalities or teacher.municipality_id in campaign.municipalities) and (
        not campaign.organizations or teacher.organization_id in campaign.organizations
    )
