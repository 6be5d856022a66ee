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
