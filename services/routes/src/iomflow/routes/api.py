"""HTTP routes of the routes service."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException

from iomflow.routes import repository
from iomflow.shared.service import SessionDep

router = APIRouter(prefix="/v1", tags=["routes"])


def _route(row: Any) -> dict[str, Any]:
    return {
        "route_id": row.route_id,
        "diagnosis_id": row.diagnosis_id,
        "teacher_id": row.teacher_id,
        "municipality_id": row.municipality_id,
        "status": row.status,
        "steps": row.steps,
        "total_hours": row.total_hours,
        "methodist_id": row.methodist_id,
        "created_at": row.created_at.isoformat() if row.created_at else None,
    }


@router.get("/routes/{route_id}", summary="A route with the reason of every step")
async def get_route(route_id: str, session: SessionDep) -> dict[str, Any]:
    row = await repository.get_route(session, route_id)
    if row is None:
        raise HTTPException(404, detail=f"Маршрут «{route_id}» не найден.")
    return _route(row)


@router.get("/teachers/{teacher_id}/routes", summary="A teacher's routes, oldest first")
async def teacher_routes(teacher_id: str, session: SessionDep) -> list[dict[str, Any]]:
    return [_route(r) for r in await repository.teacher_routes(session, teacher_id)]


@router.get("/methodists", summary="Methodists with their load")
async def methodists(session: SessionDep) -> list[dict[str, Any]]:
    return [m.__dict__ for m in await repository.all_methodists(session)]


@router.get("/queue", summary="Routes waiting for a methodist")
async def queue(session: SessionDep) -> list[dict[str, Any]]:
    return [_route(r) for r in await repository.unassigned(session)]


@router.get("/stats", summary="Counts of read models and routes")
async def stats(session: SessionDep) -> dict[str, int]:
    return await repository.counts(session)
