"""The methodist's workplace: pages in Russian served by routes itself, and the JSON they read.

``GET /workplace`` (my teachers and their routes, drafts awaiting my approval, the queue of
routes waiting for a methodist) and ``GET /workplace/routes/{route_id}`` (a route in words:
its steps, reason, dates, hours and history; approve, add, replace, remove and complete
steps) are hand-written HTML; their scripts and style sheet are the files of ``static/``
(``GET /workplace/assets/{name}``), on top of the pages' foundation (``/ui/assets/…``:
session, API calls, tables with sort, filter, search and XLSX export). Nothing comes from
another origin. The pages act through the existing commands of ``iomflow.routes.api`` with
the session's principal: a methodist's key is that methodist, so ``by`` comes from it.

The JSON here says in words what the routes' rows hold in codes, with titles from the read
models and people's names from the registries (``iomflow.routes.people``) for a principal
holding ``personal_data``; pseudonyms otherwise, with a note the page shows.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select

from iomflow.routes import api, domain, people, repository, views, wording
from iomflow.routes.settings import Settings
from iomflow.routes.views import (
    OptionsRead,
    RouteViewRead,
    WorkplaceRead,
)
from iomflow.shared import signin
from iomflow.shared.auth import Principal, require
from iomflow.shared.errors import Refused
from iomflow.shared.problems import Paging, page, problems
from iomflow.shared.service import RuntimeDep, SessionDep

pages = APIRouter(tags=["workplace"], include_in_schema=False)
router = APIRouter(prefix="/v1", tags=["workplace"])
Methodist = Annotated[Principal, Depends(require("methodist"))]

FILES = signin.Files(
    "iomflow.routes",
    {"workplace.js": signin.SCRIPT, "route.js": signin.SCRIPT, "workplace.css": signin.STYLE},
)

QUEUE_SHOWN = 1000
"""The workplace shows the queue's first routes, oldest first, and how many wait in all;
``GET /v1/queue`` pages through the rest."""

ROUTE_404 = "нет такого маршрута (route_not_found)"


def _settings(runtime: RuntimeDep) -> Settings:
    settings = runtime.settings
    assert isinstance(settings, Settings)
    return settings


# --- pages ---------------------------------------------------------------------------------


@pages.get("/", response_class=RedirectResponse)
async def root() -> RedirectResponse:
    return RedirectResponse("/workplace", status_code=307)


@pages.get("/workplace", response_class=HTMLResponse)
async def workplace_page() -> Response:
    return FILES.page("workplace.html")


@pages.get("/workplace/routes/{route_id}", response_class=HTMLResponse)
async def route_page(route_id: str) -> Response:
    return FILES.page("route.html")


@pages.get("/workplace/assets/{name}", response_class=Response)
async def asset(name: str) -> Response:
    return FILES.asset(name)


# --- the JSON the pages read ---------------------------------------------------------------


@router.get(
    "/workplace",
    summary="A methodist's workplace: their routes, drafts awaiting them, the queue (methodist)",
    response_model=WorkplaceRead,
    responses=problems(
        403,
        422,
        s403="ключ без роли methodist (forbidden) или чужой ключ (not_your_key)",
        s422="ключ не привязан к методисту, а methodist_id не указан (methodist_required)",
    ),
)
async def workplace(
    session: SessionDep,
    runtime: RuntimeDep,
    ctx: api.Ctx,
    who: Methodist,
    methodist_id: Annotated[
        str | None, Query(description="Only with a key of no person: whose workplace")
    ] = None,
) -> dict[str, Any]:
    """Every route of the methodist, any status (my teachers and how their routes go), the
    drafted ones still lacking the methodist's approval, and the first routes no methodist
    holds yet (``queue``: a page, its ``total`` how many wait). Teachers' names for a
    principal holding ``personal_data`` (from the registries, audited there); pseudonyms
    otherwise. The queue's teachers are not the methodist's: always pseudonyms."""
    me = api.acting(who, methodist_id, field="methodist_id", code="methodist_required")
    r = repository.routes
    mine = list(
        await session.execute(
            select(r).where(r.c.methodist_id == me).order_by(r.c.created_at, r.c.route_id)
        )
    )
    first = Paging(offset=0, limit=QUEUE_SHOWN)
    waiting, waiting_total = await api.routes_page(
        session, first, r.c.status.in_(domain.OPEN), r.c.methodist_id.is_(None)
    )
    known = {m.methodist_id: m for m in await repository.get_all_methodists(session)}
    titles = await views.Titles.of(session, [*mine, *waiting])
    names = await people.names_of(
        _settings(runtime), who, {"teachers": {row.teacher_id for row in mine}}
    )
    nobodys = people.Names(shown=False)  # the queue's teachers are not this methodist's
    rows = [views.summary(row, titles, names, ctx.rules) for row in mine]
    methodist = known.get(me)
    return {
        "methodist_id": me,
        "methodist": (
            None
            if methodist is None
            else {
                "capacity": methodist.capacity,
                "load": methodist.load,
                "free": methodist.capacity - methodist.load,
            }
        ),
        "names": names.public(),
        "routes": rows,
        "awaiting": [
            row
            for row in rows
            if row["status"] == "drafted" and "methodist" in row["missing_approvals"]
        ],
        "queue": page(
            [views.summary(row, titles, nobodys, ctx.rules) for row in waiting],
            waiting_total,
            first,
        ),
    }


@router.get(
    "/routes/{route_id}/view",
    summary="A route in words: steps, reasons, history with names (methodist)",
    response_model=RouteViewRead,
    response_model_exclude_unset=True,
    responses=problems(403, 404, s404=ROUTE_404),
)
async def route_view(
    route_id: str, session: SessionDep, runtime: RuntimeDep, ctx: api.Ctx, who: Methodist
) -> dict[str, Any]:
    """``GET /v1/routes/{route_id}`` with the codes said in words: each step's kind,
    competency, program, site, community and mentor; the history's actions and who did
    them; whether the route is the caller's (``mine``). Names for a principal holding
    ``personal_data`` and only on their own route."""
    row = await repository.get_route(session, route_id)
    if row is None:
        raise Refused("route_not_found", f"Маршрут «{route_id}» не найден.", 404)
    mine = who.person_id is None or row.methodist_id == who.person_id
    titles = await views.Titles.of(session, [row])
    if mine:
        names = await people.names_of(_settings(runtime), who, views.people_in([row]))
    else:
        names = people.hidden(people.NOTE_NOT_YOURS)
    route = api.route_read(row, ctx.rules)
    return {
        **route,
        **{k: v for k, v in views.summary(row, titles, names, ctx.rules).items() if k not in route},
        "methodist_name": views.person(names, "methodists", row.methodist_id),
        "status_reason": row.status_reason,
        "steps": [views.step_words(s, titles, names) for s in row.steps],
        "history": [views.history_words(h, names) for h in row.history],
        "mine": row.methodist_id is not None and row.methodist_id == who.person_id,
        "names": names.public(),
    }


@router.get(
    "/routes/{route_id}/options",
    summary="What a step of this route may be: competencies, kinds, programs, sites, "
    "communities, mentors (methodist)",
    response_model=OptionsRead,
    responses=problems(403, 404, s404=ROUTE_404),
)
async def route_options(
    route_id: str, session: SessionDep, runtime: RuntimeDep, ctx: api.Ctx, who: Methodist
) -> dict[str, Any]:
    """The choices of the page's step form, from the read models: programs and internship
    sites with their titles, communities, the mentors of the teacher's municipality (names
    as in ``/view``)."""
    row = await repository.get_route(session, route_id)
    if row is None:
        raise Refused("route_not_found", f"Маршрут «{route_id}» не найден.", 404)
    offer = await ctx.offer(session)
    sites = await repository.get_all_sites(session)
    mentors = await repository.find_mentors(session, [row.municipality_id])
    mine = who.person_id is None or row.methodist_id == who.person_id
    if not mine:
        names = people.hidden(people.NOTE_NOT_YOURS)
    elif mentors:
        wanted = {"mentors": {m.mentor_id for m in mentors}}
        names = await people.names_of(_settings(runtime), who, wanted)
    else:
        names = people.Names(shown=False)  # no mentor to name
    return {
        "competencies": [
            {"code": code, "name": name} for code, name in wording.competency_names().items()
        ],
        "kinds": [{"code": code, "name": name} for code, name in wording.KINDS.items()],
        "programs": sorted(
            (
                {
                    "program_id": p.program_id,
                    "title": p.title,
                    "hours": p.hours,
                    "format_name": wording.format_of(p.format),
                    "competencies": sorted(p.competencies),
                    "federal_registry": p.federal_registry,
                }
                for p in offer.programs
            ),
            key=lambda p: p["title"],
        ),
        "sites": sorted(
            (
                {"site_id": s.site_id, "title": s.title, "competencies": sorted(s.competencies)}
                for s in sites
            ),
            key=lambda s: s["title"],
        ),
        "communities": sorted(
            (
                {"community_id": c.community_id, "title": c.title, "level": wording.level(c.level)}
                for c in offer.communities
            ),
            key=lambda c: c["title"],
        ),
        "mentors": [
            {"mentor_id": m.mentor_id, "name": views.person(names, "mentors", m.mentor_id)}
            for m in mentors
        ],
        "names": names.public(),
    }
