"""The use cases of monitoring's HTTP API: the KPIs as of a day (today's from the
maintained snapshot, ``projection``), a municipality's, a KPI's series, the tracked items
recorded, alerts acknowledged and the yearly report in its forms. The rules are
``domain`` (the KPIs), ``report`` (what the report says) and ``alerts``; this module
reads what they need, keeps the answers while the projections stay the same
(``views.Cache``) and refuses what the rules refuse; ``api``, ``reports_api`` and
``console`` only map HTTP onto it."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncSession

from iomflow.monitoring import domain, pdf, printout, report, repository, spreadsheet, views
from iomflow.monitoring.context import Context
from iomflow.shared.errors import Refused

Form = Literal["json", "xlsx", "html", "pdf"]
EARLIEST = date(2000, 1, 1)
"""The earliest day asked for (a KPI reads a year and a pace before it)."""


def context_of(runtime: Any) -> Context:
    found = runtime.context
    assert isinstance(found, Context)
    return found


def day(runtime: Any, as_of: date | None) -> date:
    """The day asked for (today when none); a day to come is refused."""
    today = context_of(runtime).clock().date()
    if as_of is not None and as_of > today:
        raise Refused("future_date", "Дата «на» не может быть в будущем.", 422)
    if as_of is not None and as_of < EARLIEST:
        raise Refused(
            "date_too_early", f"Дата «на» не может быть раньше {EARLIEST.year} года.", 422
        )
    return as_of or today


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


async def municipality(runtime: Any, municipality_id: str, on: date) -> dict[str, Any]:
    """A municipality's KPIs and each of its organisations' as of ``on``; 404 for a
    municipality with no members and no KPI population."""
    ctx = context_of(runtime)
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


async def series(
    runtime: Any, code: str, municipality_id: str | None, months: int, on: date
) -> dict[str, Any]:
    """A KPI's value every 30 days back from ``on``, ``months`` points; 404 for a KPI not
    in the catalogue."""
    ctx = context_of(runtime)
    named = {k.code: k.name for k in ctx.catalogue.kpis}
    if code not in named:
        raise Refused("unknown_kpi", f"Показатель «{code}» не найден в каталоге.", 404)
    days = [on - timedelta(days=30 * n) for n in reversed(range(months))]
    facts = await ctx.cache.facts(runtime.sessions)
    scope = domain.Scope(municipality_id=municipality_id)
    points = await ctx.cache.answer(
        ("series", code, municipality_id, tuple(days)),
        lambda: domain.series(ctx.catalogue, facts, scope, days, code),
    )
    return {"code": code, "name": named[code], "municipality_id": municipality_id, "points": points}


async def tracked(runtime: Any, session: AsyncSession) -> list[dict[str, Any]]:
    """The tracked items of the catalogue with each period's status as of today."""
    ctx = context_of(runtime)
    return domain.tracked(
        ctx.catalogue, await repository.tracked_evidence(session), ctx.clock().date()
    )


async def record_tracked(
    runtime: Any,
    session: AsyncSession,
    code: str,
    period: str,
    status: domain.TrackedState,
    evidence: str,
    by: str,
) -> dict[str, Any]:
    """Record a tracked item's status for a period, with its evidence; the period as
    ``tracked`` then says it. 404 for an item not in the catalogue, 422 for a period not
    the item's."""
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
            "status": status,
            "evidence": evidence.strip(),
            "recorded_by": by,
            "recorded_at": ctx.clock(),
        },
    )
    await session.commit()
    recorded = await repository.tracked_evidence(session)
    found = next(t for t in domain.tracked(ctx.catalogue, recorded, on) if t["code"] == code)
    return next(p for p in found["periods"] if p["period"] == period)  # type: ignore[no-any-return]


# --- alerts --------------------------------------------------------------------------------

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


async def alerts(
    session: AsyncSession, open_only: bool, offset: int, limit: int
) -> tuple[list[dict[str, Any]], int]:
    rows, total = await repository.list_alerts(session, open_only, limit, offset)
    return [alert_read(row) for row in rows], total


async def acknowledge(
    runtime: Any, session: AsyncSession, alert_id: str, by: str
) -> dict[str, Any]:
    """Acknowledge an open alert (the first acknowledgement holds); 404 when there is no
    such open alert."""
    row = await repository.acknowledge_alert(session, alert_id, by, runtime.clock())
    await session.commit()
    if row is None:
        raise Refused(
            "alert_not_found",
            f"Открытое оповещение «{alert_id}» не найдено: его нет или оно уже снято.",
            404,
        )
    return alert_read(row)


# --- the yearly report ---------------------------------------------------------------------


async def yearly_report(runtime: Any, year: int, form: Form = "json", by: str | None = None) -> Any:
    """The report for ``year`` as data (``form`` = "json"), a workbook ("xlsx"), a page
    ("html") or a PDF of the page ("pdf"), each made once while the facts stay the same, off
    the event loop. The current year's is made from today's KPI snapshot, as ``/v1/kpis``
    answers; last year's values are those of ``/v1/kpis?as_of=`` the same day a year
    earlier; the tracked items are as ``/v1/tracked`` would say on the report's day (what
    is recorded now, judged then). Recording evidence changes no projection: what is
    recorded is part of the key the forms are kept by."""
    ctx = context_of(runtime)
    settings = runtime.settings
    today = ctx.clock().date()
    on = report.as_of(year, today)  # refuses a year to come before anything is loaded
    answer = await region(runtime, on)
    before = await region(runtime, report.a_year_before(on))
    prepared_by = by or settings.report_prepared_by
    async with runtime.sessions() as session:
        recorded = await repository.tracked_evidence(session)
    tracked = domain.tracked(ctx.catalogue, recorded, on)
    key = (
        year,
        on,
        answer.get("computed_at"),
        before.get("computed_at"),
        prepared_by,
        settings.region_name,
        tuple(
            sorted(
                (code, period, row.get("status"), str(row.get("recorded_at")))
                for (code, period), row in recorded.items()
            )
        ),
    )
    found = await ctx.cache.answer(
        ("report", *key),
        lambda: report.content(
            ctx.catalogue,
            answer,
            year,
            on,
            final=year < today.year,
            before=before,
            region_name=settings.region_name,
            prepared_by=prepared_by,
            made_on=today,
            tracked=tracked,
        ),
    )
    if form == "json":
        return found
    if form == "xlsx":
        return await ctx.cache.answer(("report.xlsx", *key), lambda: spreadsheet.workbook(found))
    page = await ctx.cache.answer(("report.html", *key), lambda: printout.html(found))
    if form == "html":
        return page
    return await ctx.cache.answer(("report.pdf", *key), lambda: pdf.render(page))
