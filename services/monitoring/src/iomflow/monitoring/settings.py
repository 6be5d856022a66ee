from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from iomflow.shared import redisconn
from iomflow.shared.settings import BaseServiceSettings


class Settings(BaseServiceSettings):
    service: str = "monitoring"
    http_port: int = 8003
    region_name: str = Field(
        default="Иркутская область",
        min_length=1,
        description="The region's name, as the dashboard and the report name its level",
    )
    report_prepared_by: str = Field(
        default="ЦНППМ",
        min_length=1,
        max_length=300,
        description="Who prepared the yearly report («Подготовлено: …» on its title page); a "
        "request may say otherwise (?prepared_by=)",
    )
    diagnostics_public_url: str | None = Field(
        default=None,
        description="The diagnostics service's address as a user's browser reaches it: the "
        "dashboard then links its analytics workbook (<url>/v1/analytics.xlsx); unset, no link",
    )
    alert_check_interval_s: float = Field(
        default=60, gt=0, description="How often alerts are detected, raised and resolved"
    )
    route_wait_days: int = Field(
        default=14, ge=0, description="Alert when routes wait for a methodist longer"
    )
    diagnosis_route_days: int = Field(
        default=7, ge=0, description="Alert when a diagnosis with deficits has no route after"
    )
    burnout_rise_points: float = Field(
        default=5.0,
        gt=0,
        description="Alert (burnout_risk_rising) when the share of teachers with a high burnout "
        "level grows by more than this many percentage points from one survey wave to the next",
    )
    burnout_min_surveyed: int = Field(
        default=10,
        ge=1,
        description="A burnout survey wave with fewer teachers surveyed is left out of that "
        "comparison (it says nothing of the trend)",
    )
    kpi_refresh_s: float = Field(
        default=1.0, gt=0, description="How often the KPI snapshot job looks for changes"
    )
    kpi_quiet_s: float = Field(
        default=3.0,
        ge=0,
        description="The KPI snapshot is renewed once the projections have not changed this long",
    )
    kpi_max_lag_s: float = Field(
        default=60.0,
        gt=0,
        description="… or once it is this old while they keep changing (a burst)",
    )
    kpi_worker: Literal["process", "thread"] = Field(
        default="process",
        description="Where the KPI snapshot is evaluated: a worker process of its own (the "
        "consumer keeps its pace meanwhile), or a thread of the service",
    )
    ops_redis_url: str | None = Field(
        default=None,
        description="The console's Redis (stream lag, dead letters, replay and drop): the "
        "operator's user (iomflow-operator of iomflow acl) where the service's own user may "
        "not touch every stream; unset, the service's redis_url",
    )
    traces_query_url: str | None = Field(
        default=None,
        description="The query API of the trace store behind the OTLP collector (e.g. "
        "Jaeger's http://jaeger:16686), for the console's trace view where spans go to a "
        "collector instead of traces_dir. Reading it is not built yet: while it is set, the "
        "trace view answers 501 saying so (iomflow trace --jaeger reads Jaeger meanwhile)",
    )

    @field_validator("ops_redis_url")
    @classmethod
    def _ops_redis_scheme(cls, value: str | None) -> str | None:
        if value is not None:
            redisconn.parse(value)
        return value
