from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr

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
    registries_url: str | None = Field(
        default=None,
        description="The registries service (http://host:port), where the methodist's "
        "workplace reads teachers' and mentors' names; unset: pseudonyms only",
    )
    registries_key: SecretStr | None = Field(
        default=None,
        description="An API key of the registries holding personal_data, for those reads "
        "(each is written to the registries' access log with its purpose)",
    )
    registries_timeout_s: float = Field(
        default=5, gt=0, description="How long the workplace waits for the registries"
    )
