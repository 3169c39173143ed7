#!/usr/bin/env bash
# Starts the real services the test suite talks to: PostgreSQL and Redis on private
# loopback ports, installing them (with Chromium, the browser the console's tests drive, and
# poppler-utils, for the report tests' PDFs) from Debian's packages when they are missing.
# Idempotent: a second call finds them running. Prints the env to export.
#   eval "$(scripts/services.sh up)"     scripts/services.sh down
set -euo pipefail

STATE="${FLEET_SERVICES_DIR:-/var/tmp/fleet-services}"
PG_PORT="${FLEET_PG_PORT:-54329}"
REDIS_PORT="${FLEET_REDIS_PORT:-63799}"
# Several checkouts may test at once against the same servers: each names its own
# database and Redis db (the test database is "test_<name>").
PG_DB="${FLEET_PG_DB:-fleet}"
REDIS_DB="${FLEET_REDIS_DB:-0}"

log() { echo "services: $*" >&2; }

as_pg() {  # PostgreSQL refuses to run as root
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

install_missing() {
  local need=()
  command -v redis-server >/dev/null || need+=(redis-server)
  command -v pdftoppm >/dev/null || need+=(poppler-utils)  # the report tests render PDFs
  ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || need+=(postgresql)
  command -v chromium >/dev/null || need+=(chromium)
  [ ${#need[@]} -eq 0 ] && return
  log "installing ${need[*]} from Debian's packages"
  local sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >&2
}

pg_bin() { ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1; }

up() {
  install_missing
  mkdir -p "$STATE"
  local bin; bin="$(pg_bin)"
  if [ "$(id -u)" = 0 ]; then chown postgres "$STATE"; fi
  if [ ! -f "$STATE/pgdata/PG_VERSION" ]; then
    log "initialising PostgreSQL in $STATE/pgdata"
    as_pg "$bin/initdb" -D "$STATE/pgdata" -U postgres --auth=trust -E UTF8 >/dev/null
  fi
  if ! as_pg "$bin/pg_ctl" -D "$STATE/pgdata" status >/dev/null 2>&1; then
    log "starting PostgreSQL on 127.0.0.1:$PG_PORT"
    # Durability off: a test database is thrown away, and fsync dominates its run time.
    as_pg "$bin/pg_ctl" -D "$STATE/pgdata" -l "$STATE/postgres.log" -w -o \
      "-p $PG_PORT -k $STATE -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
      start >/dev/null
  fi
  if ! redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; then
    log "starting Redis on 127.0.0.1:$REDIS_PORT"
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
      --daemonize yes --logfile "$STATE/redis.log" --pidfile "$STATE/redis.pid"
    for _ in $(seq 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
  fi
  echo "export DATABASE_URL=postgres://postgres@127.0.0.1:$PG_PORT/$PG_DB"
  echo "export CELERY_BROKER_URL=redis://127.0.0.1:$REDIS_PORT/$REDIS_DB"
}

down() {
  local bin; bin="$(pg_bin)"
  as_pg "$bin/pg_ctl" -D "$STATE/pgdata" -m fast stop >/dev/null 2>&1 || true
  redis-cli -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
}

case "${1:-up}" in
  up) up ;;
  down) down ;;
  *) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
