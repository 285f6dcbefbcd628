#!/usr/bin/env bash
# Throwaway PostgreSQL 15 + pgvector and Redis on loopback ports, for `make test` and benchmarks.
#
#   scripts/test-services.sh install   install the Debian packages (the services, nginx, wrk and
#                                      Chromium for the browser tests) and build pgvector
#                                      (idempotent)
#   scripts/test-services.sh start     start both services; prints the env lines to use
#   scripts/test-services.sh stop      stop both services and remove their data
#   scripts/test-services.sh with CMD  start them, run CMD with their URLs exported, stop them
#                                      (whatever happens; CMD's exit code is kept)
#
# Debian bookworm ships no pgvector for PostgreSQL 15, so Debian's own source package (from
# trixie) is built against PG15; that takes about 10 seconds.
#
# PARLEY_SERVICES_DIR, PARLEY_TEST_PGPORT and PARLEY_TEST_REDIS_PORT move the services;
# PARLEY_TEST_PG_OPTIONS adds server settings, e.g. "-c shared_buffers=6GB" for a benchmark.
set -euo pipefail

BASE=${PARLEY_SERVICES_DIR:-/tmp/parley-test-services}
PGPORT=${PARLEY_TEST_PGPORT:-55432}
REDIS_PORT=${PARLEY_TEST_REDIS_PORT:-56379}
PG_OPTIONS=${PARLEY_TEST_PG_OPTIONS:-}
PGBIN=/usr/lib/postgresql/15/bin

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

install_packages() {
  local need=()
  [ -x "$PGBIN/postgres" ] || need+=(postgresql-15)
  [ -x "$PGBIN/pg_config" ] || [ -x /usr/bin/pg_config ] || need+=(postgresql-server-dev-15)
  dpkg -s postgresql-server-dev-15 >/dev/null 2>&1 || need+=(postgresql-server-dev-15)
  command -v redis-server >/dev/null || need+=(redis-server)
  command -v nginx >/dev/null || need+=(nginx)
  command -v wrk >/dev/null || need+=(wrk)
  # The widget's browser tests drive Debian's Chromium (never a downloaded browser).
  [ -x /usr/bin/chromium ] || need+=(chromium fonts-dejavu-core)
  if [ ${#need[@]} -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    as_root apt-get update -qq
    as_root apt-get install -y -qq --no-install-recommends "${need[@]}" build-essential >/dev/null
    # The Debian package starts a default cluster on 5432; Parley does not use it.
    as_root pg_ctlcluster 15 main stop >/dev/null 2>&1 || true
  fi
  [ -f /usr/share/postgresql/15/extension/vector.control ] || build_pgvector
}

build_pgvector() {
  local work opts
  work=$(mktemp -d)
  mkdir -p "$work/parts" "$work/lists/partial" "$work/cache/archives/partial"
  # Reuse the machine's own Debian mirror entry, switched to deb-src for trixie.
  awk 'BEGIN{RS="";ORS="\n\n"} NR==1' /etc/apt/sources.list.d/debian.sources \
    | sed -e 's/^Types: .*/Types: deb-src/' -e 's/^Suites: .*/Suites: trixie/' >"$work/parts/src.sources"
  opts="-o APT::Sandbox::User=root -o Dir::Etc::SourceParts=$work/parts -o Dir::Etc::SourceList=/dev/null"
  opts="$opts -o Dir::State::Lists=$work/lists -o Dir::Cache=$work/cache"
  # shellcheck disable=SC2086
  as_root apt-get $opts update -qq
  # shellcheck disable=SC2086
  (cd "$work" && as_root apt-get $opts source --download-only -qq pgvector >/dev/null 2>&1 \
    && tar xzf pgvector_*.orig.tar.gz)
  as_root make -s -C "$work"/pgvector-*/ -j"$(nproc)" PG_CONFIG=$PGBIN/pg_config OPTFLAGS="" >/dev/null
  as_root make -s -C "$work"/pgvector-*/ install PG_CONFIG=$PGBIN/pg_config OPTFLAGS="" >/dev/null
  as_root rm -rf "$work"
}

start_services() {
  stop_services >/dev/null 2>&1 || true
  as_root install -d -o postgres -g postgres "$BASE/pg"
  as_root runuser -u postgres -- "$PGBIN/initdb" -D "$BASE/pg/data" -U postgres -A trust -E UTF8 \
    --no-sync >/dev/null
  as_root runuser -u postgres -- "$PGBIN/pg_ctl" -D "$BASE/pg/data" -l "$BASE/pg/server.log" -w \
    -o "-p $PGPORT -k $BASE/pg -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off \
-c full_page_writes=off -c max_connections=300 $PG_OPTIONS" start >/dev/null
  mkdir -p "$BASE/redis"
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --daemonize yes \
    --pidfile "$BASE/redis/redis.pid" --logfile "$BASE/redis/redis.log" --dir "$BASE/redis"
  for _ in $(seq 50); do
    redis-cli -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG && break
    sleep 0.1
  done
  print_env
}

stop_services() {
  if [ -f "$BASE/pg/data/postmaster.pid" ]; then
    as_root runuser -u postgres -- "$PGBIN/pg_ctl" -D "$BASE/pg/data" -m fast stop >/dev/null || true
  fi
  if [ -f "$BASE/redis/redis.pid" ]; then
    kill "$(cat "$BASE/redis/redis.pid")" 2>/dev/null || true
  fi
  as_root rm -rf "$BASE"
}

print_env() {
  echo "PARLEY_TEST_ADMIN_DATABASE_URL=postgresql+asyncpg://postgres@127.0.0.1:$PGPORT/postgres"
  echo "PARLEY_TEST_REDIS_URL=redis://127.0.0.1:$REDIS_PORT/0"
}

run_with_services() {
  local line status=0
  trap 'stop_services >/dev/null 2>&1 || true' EXIT
  trap 'exit 130' INT TERM
  for line in $(start_services); do
    case "$line" in PARLEY_TEST_*=*) export "${line?}" ;; esac
  done
  "$@" || status=$?
  return "$status"
}

case "${1:-}" in
  install) install_packages ;;
  start) start_services ;;
  stop) stop_services ;;
  env) print_env ;;
  with) shift; run_with_services "$@" ;;
  *) echo "usage: $0 install|start|stop|env|with CMD..." >&2; exit 2 ;;
esac
