"""What the registries service holds beside the host's runtime: its settings and the import
jobs (``ServiceSpec.context``; handlers would get it as ``deps.ctx``, routes through
``ContextDep``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any

from fastapi import Depends

from iomflow.registries.jobs import ImportJobs
from iomflow.registries.settings import Settings
from iomflow.shared.service import Runtime, RuntimeDep


@dataclass(frozen=True)
class Context:
    settings: Settings
    imports: ImportJobs


def build(runtime: Runtime[Any]) -> Context:
    settings = runtime.settings
    assert isinstance(settings, Settings)
    keep_for = timedelta(hours=settings.keep_upload_hours)
    imports = ImportJobs(runtime.sessions, runtime.transaction, keep_for)
    return Context(settings=settings, imports=imports)


def get_context(runtime: RuntimeDep) -> Context:
    context = runtime.context
    assert isinstance(context, Context)
    return context


ContextDep = Annotated[Context, Depends(get_context)]
