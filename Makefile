# The two commands of the README. Both install uv (from PyPI) when it is missing.
UV := $(shell command -v uv 2>/dev/null || echo "python3 -m uv")
PYTEST_ARGS ?=

.PHONY: demo dev test lint contracts uv

demo: uv  ## set everything up and run the whole chain with the demo region
	$(UV) sync --all-packages --frozen
	$(UV) run iomflow demo

dev: uv  ## the same, then stay up and print the URLs
	$(UV) sync --all-packages --frozen
	$(UV) run iomflow dev

test: uv  ## installs what the tests need, then the suite (real Redis and PostgreSQL, started by the fixtures)
	$(UV) sync --all-packages --frozen
	bash tests/tools.sh
	$(UV) run pytest $(PYTEST_ARGS)

lint: uv
	$(UV) run ruff check .
	$(UV) run ruff format --check .

contracts: uv  ## regenerate docs/contracts and docs/asyncapi from the code
	$(UV) run iomflow contracts

uv:
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || \
		python3 -m pip install --quiet uv
