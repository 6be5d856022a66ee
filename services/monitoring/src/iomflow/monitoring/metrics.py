"""KPI values for operators' monitoring systems, in the Prometheus text format (one gauge
family per measure; labels name the KPI and the level).

``GET /metrics`` belongs to the service host (``iomflow.shared.service``), which renders the
operational metrics every service has (stream lag, DLQ, handlers, HTTP); monitoring adds its
KPIs to it through ``kpi_collector``, a collector of its ``ServiceSpec``."""

from __future__ import annotations

from collections import Counter
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from iomflow.monitoring import repository
from iomflow.monitoring.service import context_of
from iomflow.shared.service import Runtime


class Snapshot(Collector):
    """One answer of ``/v1/kpis`` and the open alerts, as gauges."""

    def __init__(self, answer: dict[str, Any], alerts: Counter[str]) -> None:
        self.answer, self.alerts = answer, alerts

    def collect(self) -> Any:
        value = GaugeMetricFamily(
            "iomflow_kpi_value", "KPI value (percent or people)", labels=["code", "municipality"]
        )
        met = GaugeMetricFamily(
            "iomflow_kpi_met", "1 when the KPI meets its target", labels=["code", "municipality"]
        )
        target = GaugeMetricFamily("iomflow_kpi_target", "Target in force", labels=["code"])
        levels = [("", self.answer["region"]["kpis"])] + [
            (m["municipality_id"], m["kpis"]) for m in self.answer["municipalities"]
        ]
        for municipality, kpis in levels:
            for k in kpis:
                if k["value"] is not None:
                    value.add_metric([k["code"], municipality], k["value"])
                if k["met"] is not None:
                    met.add_metric([k["code"], municipality], 1.0 if k["met"] else 0.0)
        for k in self.answer["region"]["kpis"]:
            target.add_metric([k["code"]], k["target"])
        alerts = GaugeMetricFamily("iomflow_alerts_open", "Open alerts", labels=["kind"])
        for kind, n in sorted(self.alerts.items()):
            alerts.add_metric([kind], n)
        yield from (value, met, target, alerts)


async def kpi_collector(runtime: Runtime[Any]) -> Collector:
    """The KPIs of the region and its municipalities as of today (the snapshot), and the
    open alerts."""
    answer = await context_of(runtime).kpis.answer(runtime.sessions)
    async with runtime.sessions() as session:
        alerts = Counter(await repository.open_alerts_by_kind(session))
    return Snapshot(answer, alerts)


COLLECTORS = [("kpis", kpi_collector)]
"""What monitoring adds to ``/metrics``."""
