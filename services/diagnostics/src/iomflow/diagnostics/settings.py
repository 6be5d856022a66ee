from __future__ import annotations

from pathlib import Path

from pydantic import Field

from iomflow.shared.settings import BaseServiceSettings


class Settings(BaseServiceSettings):
    service: str = "diagnostics"
    http_port: int = 8001
    framework_path: Path | None = Field(
        default=None, description="Competency framework JSON; default: the shipped one"
    )
    hold_days: float = Field(
        default=30,
        gt=0,
        description="How long a result for a teacher the registries do not know is held "
        "before it is dead-lettered",
    )
    hold_check_interval_s: float = Field(
        default=300, gt=0, description="How often held results are checked for their deadline"
    )
