#!/usr/bin/env bash
# Installs what the tests need and runs the whole suite against real services:
# PostgreSQL and Redis (from Debian's packages if missing), every Go-built tool
# (fleet.toolchain: cached in ~/.cache/fleet/bin), then pytest on PostgreSQL,
# then the `embedded` subset on SQLite to keep the no-services default honest.
# PYTEST_MARK narrows both runs (e.g. "not slow"); extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap-venv.sh dev
echo "== lint (ruff check: pycodestyle, pyflakes, import order, pyupgrade, bugbear)"
.venv/bin/ruff check .
eval "$(scripts/services.sh up)"
.venv/bin/python -m fleet.toolchain

# The suite uses the dev tooling (fleet.dev): the local fleet, test repos, the OPA runner.
export FLEET_DEV_TOOLS=true
export FLEET_DATA_DIR="${FLEET_TEST_DATA_DIR:-$(mktemp -d /tmp/fleet-test.XXXXXX)}"
mark="${PYTEST_MARK:-}"

echo "== tests on PostgreSQL ($DATABASE_URL)"
.venv/bin/pytest ${mark:+-m "$mark"} "$@"

echo "== embedded subset on SQLite"
DATABASE_URL="sqlite:///$FLEET_DATA_DIR/fleet-test.sqlite3" \
  .venv/bin/pytest -m "embedded${mark:+ and ($mark)}" "$@"
