#!/usr/bin/env bash
# Runs Fleet on its embedded defaults: SQLite, a file-system Celery broker, a worker
# (with the periodic scheduler) and the web server, all on this machine, no services.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap-venv.sh
PY=.venv/bin/python
HOST="${FLEET_HOST:-127.0.0.1}"
PORT="${FLEET_PORT:-8000}"

# The embedded policy engine is the pinned OPA, built from its Go module on first run
# (needs Go; a few minutes, with progress); later runs find it in ~/.cache/fleet/bin.
if [ "${FLEET_POLICY_ENGINE:-embedded}" = embedded ]; then
  $PY -m fleet.localfleet.binaries opa
fi
$PY manage.py migrate --no-input -v0
$PY manage.py bootstrap
$PY manage.py collectstatic --no-input -v0
mkdir -p var/log
if [ "${FLEET_DEMO:-}" = 1 ]; then
  # The demo also needs a second user: rollouts are approved by someone other than their author.
  $PY manage.py demo
  $PY manage.py accounts create-user approver --role admin >/dev/null 2>&1 &&
    echo "demo: created user 'approver' (admin); set its password with: python manage.py changepassword approver"
fi

.venv/bin/celery -A fleet worker --beat --concurrency=2 --loglevel=INFO \
  >>var/log/worker.log 2>&1 &
worker=$!
stop() {
  kill $worker 2>/dev/null; wait $worker 2>/dev/null
  if [ "${FLEET_DEMO:-}" = 1 ]; then $PY manage.py localfleet down --dir var/localfleet; fi
}
trap stop EXIT INT TERM

echo
echo "Fleet is running at http://$HOST:$PORT/  (admin console; API at /api/v1/, docs at /api/v1/docs/)"
echo "Log in as 'admin' with the password in var/admin-password."
echo "Worker log: var/log/worker.log. Stop with Ctrl-C."
echo
.venv/bin/gunicorn fleet.wsgi --bind "$HOST:$PORT" --workers 2 --threads 4 \
  --access-logfile - --error-logfile -
