# Sourced by the benchmarks that need a PostgreSQL: a throw-away cluster in $PGDIR for the
# whole run (scripts/pg_throwaway.sh), its URL in $URL, servers started with `track_server`
# stopped by `stop_servers`, and both undone on exit, however the script ends.
#
#   PGDIR=/tmp/x source scripts/lib/bench_pg.sh   # then: "$URL", track_server $!, empty_store, stop_servers

PIDS=()
URL=""

track_server() { PIDS+=("$1"); }

# SIGTERM to every tracked server at once (they drain side by side), then waits for each.
stop_servers() {
  local pid
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  PIDS=()
}

# Every table the servers keep, dropped (a fresh start for the next run): each binary migrates
# its own schema, as a binary of an older schema refuses a newer one.
empty_store() {
  psql "$URL" -qc "DROP TABLE IF EXISTS owp_seats, owp_rooms, owp_replicas, owp_bus_spill, owp_schema_migrations" 2>/dev/null || true
}

bench_pg_cleanup() {
  stop_servers
  if [[ -n "$URL" ]]; then bash scripts/pg_throwaway.sh stop "$PGDIR" || true; rm -rf "$PGDIR" "$PGDIR".*; fi
}
trap bench_pg_cleanup EXIT

rm -rf "$PGDIR" "$PGDIR".*
URL=$(bash scripts/pg_throwaway.sh start "$PGDIR")
