"""HTTP API of monitoring: KPI values by level, as of any date, with status and forecast."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from iomflow.monitoring import domain, repository, views
from iomflow.monitoring.context import Context
from iomflow.shared.auth import Operator
from iomflow.shared.errors import Refused
from iomflow.shared.service import RuntimeDep, SessionDep

router = APIRouter(prefix="/v1", tags=["monitoring"])


def context_of(runtime: Any) -> Context:
    found = runtime.context
    assert isinstance(found, Context)
    return found


def _day(runtime: Any, as_of: date | None) -> date:
    today = context_of(runtime).clock().date()
    if as_of is not None and as_of > today:
        raise Refused("future_date", "Дата «на» не может быть в будущем.", 422)
    return as_of or today


AsOf = Annotated[date | None, Query(description="Values as of the end of this day (default today)")]


async def region(runtime: Any, on: date) -> dict[str, Any]:
    """Every KPI for the region and each municipality as of ``on``: today's from the
    maintained snapshot, another day's computed on demand (and kept while the projections
    stay the same)."""
    ctx = context_of(runtime)
    if on == ctx.clock().date():
        return await ctx.kpis.answer(runtime.sessions)
    facts = await ctx.cache.facts(runtime.sessions)
    async with runtime.sessions() as session:
        names = await repository.municipality_names(session)

    def compute() -> dict[str, Any]:
        answer = views.region(ctx.catalogue, facts, names, on)
        return {**answer, "computed_at": ctx.clock().isoformat()}

    return await ctx.cache.answer(("region", on), compute)  # type: ignore[no-any-return]


@router.get(
    "/kpis",
    summary="Every KPI for the region and each municipality, as of a date",
    description="Today's answer is the maintained snapshot (``computed_at`` says when it was "
    "computed: a few seconds after the last change, at most ``kpi_max_lag_s`` behind "
    "during a burst of events); another date's is computed on demand.",
)
async def kpis(runtime: RuntimeDep, as_of: AsOf = None) -> dict[str, Any]:
    return await region(runtime, _day(runtime, as_of))


@router.get(
    "/municipalities/{municipality_id}/kpis",
    summary="A municipality's KPIs and each of its organisations'",
)
async def municipality_kpis(
    municipality_id: str, runtime: RuntimeDep, as_of: AsOf = None
) -> dict[str, Any]:
    ctx = context_of(runtime)
    on = _day(runtime, as_of)
    facts = await ctx.cache.facts(runtime.sessions)
    scope = domain.Scope(municipality_id=municipality_id)

    def compute() -> dict[str, Any] | None:
        whole = domain.evaluate(ctx.catalogue, facts, on, scope)
        if whole[None][0]["population"] == 0 and not any(
            m.municipality_id == municipality_id for m in facts.members["teachers"]
        ):
            return None
        return {
            "kpis": whole[None],
            "counts": views.counts(facts, scope, on).get(municipality_id, {}),
            "organizations": domain.evaluate(ctx.catalogue, facts, on, scope, by="organization"),
        }

    found = await ctx.cache.answer(("municipality", municipality_id, on), compute)
    if found is None:
        raise Refused("unknown_municipality", f"Муниципалитет «{municipality_id}» не найден.", 404)
    async with runtime.sessions() as session:
        names = await repository.organization_names(session)
        municipalities = await repository.municipality_names(session)
    return {
        "as_of": on.isoformat(),
        "municipality_id": municipality_id,
        "name": municipalities.get(municipality_id, municipality_id),
        "counts": found["counts"],
        "kpis": found["kpis"],
        "organizations": [
            {"organization_id": org, "name": names.get(org or "", org), "kpis": values}
            for org, values in sorted(found["organizations"].items(), key=lambda kv: kv[0] or "")
        ],
    }


@router.get("/kpis/{code}/series", summary="One KPI over time (monthly), for charts")
async def kpi_series(
    code: str,
    runtime: RuntimeDep,
    municipality_id: str | None = None,
    months: Annotated[int, Query(ge=1, le=60)] = 12,
    as_of: AsOf = None,
) -> dict[str, Any]:
    ctx = context_of(runtime)
    named = {k.code: k.name for k in ctx.catalogue.kpis}
    if code not in named:
        raise Refused("unknown_kpi", f"Показатель «{code}» не найден в каталоге.", 404)
    on = _day(runtime, as_of)
    days = [on - timedelta(days=30 * n) for n in reversed(range(months))]
    facts = await ctx.cache.facts(runtime.sessions)
    scope = domain.Scope(municipality_id=municipality_id)
    points = await ctx.cache.answer(
        ("series", code, municipality_id, tuple(days)),
        lambda: domain.series(ctx.catalogue, facts, scope, days, code),
    )
    return {"code": code, "name": named[code], "municipality_id": municipality_id, "points": points}


@router.get("/alerts", summary="Alerts: open ones first, newest first")
async def list_alerts(
    session: SessionDep,
    status: Literal["open", "all"] = "open",
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[dict[str, Any]]:
    rows = await repository.list_alerts(session, status == "open", limit)
    return [alert_read(row) for row in rows]


DATES = ("raised_at", "resolved_at", "acknowledged_at")


def alert_read(row: Any) -> dict[str, Any]:
    """An alert's row as the API answers it: dates in ISO 8601 with their offset (SQLite
    gives them back without one; they are UTC), None when not yet."""
    found = dict(row._mapping)
    return {**found, **{k: _iso(found.get(k)) for k in DATES}}


def _iso(at: datetime | None) -> str | None:
    if at is None:
        return None
    return (at if at.tzinfo is not None else at.replace(tzinfo=UTC)).isoformat()


@router.get("/catalogue", summary="The KPI catalogue in force, and the region it is for")
async def catalogue(runtime: RuntimeDep) -> dict[str, Any]:
    return {
        **context_of(runtime).catalogue.model_dump(mode="json"),
        "region_name": runtime.settings.region_name,
    }


@router.get(
    "/tracked",
    summary="Rows of Appendix 1 that are measures taken: each period's status and evidence",
)
async def list_tracked(runtime: RuntimeDep, session: SessionDep) -> list[dict[str, Any]]:
    on = context_of(runtime).clock().date()
    return domain.tracked(
        context_of(runtime).catalogue, await repository.tracked_evidence(session), on
    )


class TrackedRecord(BaseModel):
    status: domain.TrackedState = Field(description="done | in_progress | not_done")
    evidence: str = Field(
        min_length=3,
        max_length=4000,
        description="What shows it: a document's name and number, a link, a note",
    )


@router.put(
    "/tracked/{code}/{period}",
    summary="Record a tracked item's status for a period, with its evidence (operator)",
)
async def record_tracked(
    code: str,
    period: str,
    body: TrackedRecord,
    runtime: RuntimeDep,
    session: SessionDep,
    who: Operator,
) -> dict[str, Any]:
    ctx = context_of(runtime)
    item = next((t for t in ctx.catalogue.tracked if t.code == code), None)
    if item is None:
        raise Refused("unknown_tracked", f"Пункт «{code}» не найден в каталоге.", 404)
    on = ctx.clock().date()
    if period not in item.periods(on):
        allowed = ", ".join(item.periods(on))
        raise Refused(
            "unknown_period",
            f"Период «{period}» не относится к пункту «{item.name}»: допустимы {allowed}.",
            422,
        )
    await repository.record_tracked(
        session,
        {
            "code": code,
            "period": period,
            "status": body.status,
            "evidence": body.evidence.strip(),
            "recorded_by": who.name,
            "recorded_at": ctx.clock(),
        },
    )
    await session.commit()
    recorded = await repository.tracked_evidence(session)
    found = next(t for t in domain.tracked(ctx.catalogue, recorded, on) if t["code"] == code)
    return next(p for p in found["periods"] if p["period"] == period)


@router.get("/stats", summary="Members and facts kept")
async def stats(session: SessionDep) -> dict[str, int]:
    return await repository.counts(session)
