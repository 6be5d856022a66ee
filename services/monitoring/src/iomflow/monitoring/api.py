"""HTTP routes of monitoring."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter

from iomflow.monitoring import domain, repository
from iomflow.shared.service import RuntimeDep, SessionDep

router = APIRouter(prefix="/v1", tags=["monitoring"])


def _kpis(catalogue: domain.Catalogue, counts: domain.Counts) -> list[dict[str, Any]]:
    values = domain.measures(counts)
    return [
        {
            "code": kpi.code,
            "name": kpi.name,
            "unit": kpi.unit,
            # Shown to 0.1; whether the target is met is decided on the exact value.
            "value": None if values[kpi.measure] is None else round(values[kpi.measure], 1),
            "target": kpi.target,
            "comparison": kpi.comparison,
            "met": domain.met(kpi, values[kpi.measure]),
            "clause": kpi.clause,
        }
        for kpi in catalogue.kpis
    ]


@router.get("/kpis", summary="KPI values for the region and each municipality")
async def kpis(runtime: RuntimeDep, session: SessionDep) -> dict[str, Any]:
    catalogue: domain.Catalogue = runtime.extras["catalogue"]
    region, per_mun, names = await repository.counts(session)
    return {
        "as_of": datetime.now(UTC).isoformat(),
        "source": catalogue.source,
        "region": {"counts": region.__dict__, "kpis": _kpis(catalogue, region)},
        "municipalities": [
            {
                "municipality_id": mun,
                "name": names.get(mun, mun),
                "counts": c.__dict__,
                "kpis": _kpis(catalogue, c),
            }
            for mun, c in sorted(per_mun.items())
        ],
    }
