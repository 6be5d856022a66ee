"""HTTP API of monitoring: KPI values by level, as of any date, with status and forecast."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from iomflow.monitoring import domain, repository, views
from iomflow.shared.errors import Refused
from iomflow.shared.service import RuntimeDep, SessionDep

router = APIRouter(prefix="/v1", tags=["monitoring"])


def cache_of(runtime: Any) -> views.Cache:
    found = runtime.extras.setdefault("kpi_cache", views.Cache())
    assert isinstance(found, views.Cache)
    return found


def catalogue_of(runtime: Any) -> domain.Catalogue:
    found = runtime.extras["catalogue"]
    assert isinstance(found, domain.Catalogue)
    return found


def _day(as_of: date | None) -> date:
    today = datetime.now(UTC).date()
    if as_of is not None and as_of > today:
        raise Refused("future_date", "Дата «на» не может быть в будущем.", 422)
    return as_of or today


AsOf = Annotated[date | None, Query(description="Values as of the end of this day (default today)")]


@router.get("/kpis", summary="Every KPI for the region and each municipality, as of a date")
async def kpis(runtime: RuntimeDep, session: SessionDep, as_of: AsOf = None) -> dict[str, Any]:
    on = _day(as_of)
    cache = cache_of(runtime)
    facts = await cache.facts(session)
    names = await repository.municipality_names(session)
    return await cache.answer(
        ("region", on), lambda: views.region(catalogue_of(runtime), facts, names, on)
    )


@router.get(
    "/municipalities/{municipality_id}/kpis",
    summary="A municipality's KPIs and each of its organisations'",
)
async def municipality_kpis(
    municipality_id: str, runtime: RuntimeDep, session: SessionDep, as_of: AsOf = None
) -> dict[str, Any]:
    catalogue = catalogue_of(runtime)
    on = _day(as_of)
    facts = await cache_of(runtime).facts(session)
    scope = domain.Scope(municipality_id=municipality_id)
    whole = domain.evaluate(catalogue, facts, on, scope)
    if whole[None][0]["population"] == 0 and not any(
        m.municipality_id == municipality_id for m in facts.members["teachers"]
    ):
        raise Refused("unknown_municipality", f"Муниципалитет «{municipality_id}» не найден.", 404)
    orgs = domain.evaluate(catalogue, facts, on, scope, by="organization")
    names = await repository.organization_names(session)
    return {
        "as_of": on.isoformat(),
        "municipality_id": municipality_id,
        "name": (await repository.municipality_names(session)).get(
            municipality_id, municipality_id
        ),
        "counts": views.counts(facts, scope, on).get(municipality_id, {}),
        "kpis": whole[None],
        "organizations": [
            {"organization_id": org, "name": names.get(org or "", org), "kpis": values}
            for org, values in sorted(orgs.items(), key=lambda kv: kv[0] or "")
        ],
    }


@router.get("/kpis/{code}/series", summary="One KPI over time (monthly), for charts")
async def kpi_series(
    code: str,
    runtime: RuntimeDep,
    session: SessionDep,
    municipality_id: str | None = None,
    months: Annotated[int, Query(ge=1, le=60)] = 12,
    as_of: AsOf = None,
) -> dict[str, Any]:
    catalogue = catalogue_of(runtime)
    if code not in {k.code for k in catalogue.kpis}:
        raise Refused("unknown_kpi", f"Показатель «{code}» не найден в каталоге.", 404)
    on = _day(as_of)
    days = [on - timedelta(days=30 * n) for n in reversed(range(months))]
    facts = await cache_of(runtime).facts(session)
    scope = domain.Scope(municipality_id=municipality_id)
    return {
        "code": code,
        "municipality_id": municipality_id,
        "points": domain.series(catalogue, facts, scope, days, code),
    }


@router.get("/alerts", summary="Alerts: open ones first, newest first")
async def list_alerts(
    session: SessionDep,
    status: Literal["open", "all"] = "open",
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[dict[str, Any]]:
    rows = await repository.list_alerts(session, status == "open", limit)
    return [
        {
            **{k: v for k, v in row._mapping.items() if k not in ("raised_at", "resolved_at")},
            "raised_at": row.raised_at.isoformat(),
            "resolved_at": row.resolved_at.isoformat() if row.resolved_at else None,
        }
        for row in rows
    ]


@router.get("/catalogue", summary="The KPI catalogue in force")
async def catalogue(runtime: RuntimeDep) -> dict[str, Any]:
    return catalogue_of(runtime).model_dump(mode="json")


@router.get("/stats", summary="Members and facts kept")
async def stats(session: SessionDep) -> dict[str, int]:
    return await repository.counts(session)
