"""HTTP routes of the registries (thin: validation and use cases live elsewhere)."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import JSONResponse

from iomflow.registries import domain, repository, service
from iomflow.shared.service import RuntimeDep, SessionDep

router = APIRouter(prefix="/v1", tags=["registries"])


def demo_region() -> dict[str, Any]:
    data = resources.files("iomflow.registries").joinpath("data/demo_region.json")
    return json.loads(data.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


async def _load(runtime: RuntimeDep, region: dict[str, Any]) -> JSONResponse:
    async with runtime.sessions() as session, session.begin():
        # Validates every row before writing any: with errors, nothing was written.
        report = await service.load(session, runtime.outbox, region)
    if report.errors:
        return JSONResponse(
            status_code=422,
            content={
                "detail": f"Данные не загружены: ошибок в строках — {len(report.errors)}. "
                "Исправьте их и загрузите файл снова.",
                "code": "rows_invalid",
                "errors": [e.__dict__ for e in report.errors[:1000]],
            },
        )
    runtime.outbox.wake()
    return JSONResponse({"received": report.received, "changed": report.changed})


@router.post("/load", summary="Load registers (all or nothing); publishes what changed")
async def load(runtime: RuntimeDep, region: dict[str, Any]) -> JSONResponse:
    return await _load(runtime, region)


@router.post("/load/demo", summary="Load the shipped demo region")
async def load_demo(runtime: RuntimeDep) -> JSONResponse:
    return await _load(runtime, demo_region())


@router.get("/stats", summary="Records per register")
async def stats(session: SessionDep) -> dict[str, int]:
    return await repository.counts(session)


@router.get("/{register}", summary="Records of one register")
async def get_all(
    register: str,
    session: SessionDep,
    offset: int = Query(0, ge=0),
    limit: int = Query(100, ge=1, le=1000),
) -> list[dict[str, Any]]:
    if register not in domain.ENTITIES:
        raise HTTPException(
            404, detail=f"Реестр «{register}» не найден. Доступны: " + ", ".join(domain.ENTITIES)
        )
    return await repository.get_all(session, register, offset=offset, limit=limit)
