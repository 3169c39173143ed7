#!/usr/bin/env bash
# Runs Fleet on its embedded defaults: SQLite, a file-system Celery broker, a worker
# (with the periodic scheduler) and the web server, all on this machine, no services.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap-venv.sh
PY=.venv/bin/python
HOST="${FLEET_HOST:-127.0.0.1}"
PORT="${FLEET_PORT:-8000}"

# The tools the product runs are built (or found) now, never inside a request: kustomize
# renders every kustomization, and the embedded policy engine is the pinned OPA. Their first
# build takes a few minutes (it needs Go; with progress); later runs only check the cache
# (~/.cache/fleet/bin). The product locates, never builds.
if [ "${FLEET_POLICY_ENGINE:-embedded}" = embedded ]; then
  $PY -m fleet.toolchain kustomize opa
else
  $PY -m fleet.toolchain kustomize
fi
$PY manage.py migrate --no-input -v0
$PY manage.py bootstrap
$PY manage.py collectstatic --no-input -v0
mkdir -p var/log
if [ "${FLEET_DEMO:-}" = 1 ]; then
  # The demo is dev tooling (fleet.dev): its commands exist only with FLEET_DEV_TOOLS, which
  # the server and worker do not need. It also needs a second user: rollouts are approved
  # by someone other than their author.
  FLEET_DEV_TOOLS=true $PY manage.py demo
  $PY manage.py accounts create-user approver --role admin >/dev/null 2>&1 &&
    echo "demo: created user 'approver' (admin); set its password with: python manage.py changepassword approver"
fi

.venv/bin/celery -A fleet worker --beat --concurrency=2 --loglevel=INFO \
  >>var/log/worker.log 2>&1 &
worker=$!
stop() {
  kill $worker 2>/dev/null; wait $worker 2>/dev/null
  if [ "${FLEET_DEMO:-}" = 1 ]; then FLEET_DEV_TOOLS=true $PY manage.py localfleet down --dir var/localfleet; fi
}
trap stop EXIT INT TERM

echo
echo "Fleet is running at http://$HOST:$PORT/  (the console: it opens on the sign-in page)"
echo "Sign in as 'admin' with the password in var/admin-password. Raw records: /admin/; API: /api/v1/ (docs /api/v1/docs/)."
echo "Worker log: var/log/worker.log. Stop with Ctrl-C."
echo
.venv/bin/gunicorn fleet.wsgi --bind "$HOST:$PORT" --workers 2 --threads 4 \
  --access-logfile - --error-logfile -
