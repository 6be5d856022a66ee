from __future__ import annotations

from pydantic import Field

from iomflow.shared.settings import BaseServiceSettings


class Settings(BaseServiceSettings):
    service: str = "registries"
    http_port: int = 8004
    stale_after_days: int = Field(
        default=183, ge=1, description="A record not verified for longer is stale (6 months)"
    )
    stale_check_interval_s: float = Field(
        default=3600, gt=0, description="How often stale records are looked for and published"
    )
    max_upload_mb: int = Field(default=50, ge=1, description="Largest spreadsheet accepted")
    keep_upload_hours: float = Field(
        default=24,
        gt=0,
        description="How long a file whose rows had errors is kept after its import, to be "
        "downloaded with the errors marked (it may hold personal data)",
    )
