from __future__ import annotations

from pathlib import Path

from pydantic import Field

from iomflow.shared.settings import BaseServiceSettings


class Settings(BaseServiceSettings):
    service: str = "routes"
    http_port: int = 8002
    rules_path: Path | None = Field(
        default=None, description="Drafting rules JSON; default: the shipped data/rules.json"
    )
    tick_interval_s: float = Field(
        default=300,
        gt=0,
        description="How often agreed routes are started, overdue ones completed and "
        "waiting routes offered any free seat",
    )
