from __future__ import annotations

from iomflow.shared.settings import BaseServiceSettings


class Settings(BaseServiceSettings):
    service: str = "monitoring"
    http_port: int = 8003
