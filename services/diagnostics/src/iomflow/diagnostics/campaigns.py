"""Framework versions and campaigns, kept: what a result is checked against. The campaign's
rules (its window, target, open or closed) are ``domain.Campaign``'s."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from iomflow.diagnostics import domain, repository
from iomflow.diagnostics.domain import DEFAULT_CAMPAIGN, Campaign
from iomflow.shared.contracts import Instrument
from iomflow.shared.errors import Refused

__all__ = ["DEFAULT_CAMPAIGN", "create_campaign", "ensure_default_campaign", "framework_at"]


# --- frameworks ------------------------------------------------------------------------------


async def register_framework(session: AsyncSession, framework: domain.Framework) -> None:
    """Keep every framework version in force at some time, so that each diagnosis's version
    can be read and exported later. A version is immutable: a changed file must raise it."""
    document = framework.model_dump(mode="json")
    known = await repository.get_framework(session, framework.version)
    if known is None:
        await repository.add_framework(session, framework.version, document, datetime.now(UTC))
    elif known != document:
        raise RuntimeError(
            f"Рамка компетенций версии «{framework.version}» уже применялась с другим "
            "содержанием: измените версию в файле рамки (framework version is immutable)."
        )


async def framework_at(session: AsyncSession, version: str) -> domain.Framework | None:
    document = await repository.get_framework(session, version)
    return None if document is None else domain.Framework.model_validate(document)


# --- campaigns -------------------------------------------------------------------------------


async def ensure_default_campaign(session: AsyncSession, framework: domain.Framework) -> None:
    """The standing campaign: results sent without a campaign (self-diagnosis all year)."""
    if await repository.get_campaign(session, DEFAULT_CAMPAIGN) is None:
        await repository.add_campaign(session, Campaign.standing(framework, datetime.now(UTC)))


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
) -> Campaign:
    """Open a campaign (``Campaign.open``); refused if its id is taken. The campaign as
    stored."""
    if await repository.get_campaign(session, campaign_id) is not None:
        raise Refused("campaign_exists", f"Кампания «{campaign_id}» уже существует.", 409)
    try:
        campaign = Campaign.open(
            framework,
            campaign_id=campaign_id,
            name=name,
            at=datetime.now(UTC),
            starts_on=starts_on,
            ends_on=ends_on,
            municipalities=municipalities,
            organizations=organizations,
            required=required,
        )
    except domain.Refusal as exc:
        raise Refused(exc.code, exc.detail, exc.status) from exc
    await repository.add_campaign(session, campaign)
    return campaign
