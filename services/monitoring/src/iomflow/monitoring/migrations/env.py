from iomflow.monitoring.repository import metadata
from iomflow.shared.migrations import run_env

run_env(metadata)
