#!/usr/bin/env bash
# A throw-away PostgreSQL cluster on a free loopback port, for tests and trying replicas by hand.
#
#   scripts/pg_throwaway.sh start DIR   # initdb DIR, start it; prints the DATABASE_URL on stdout
#   scripts/pg_throwaway.sh stop DIR    # stops it (DIR stays; remove it yourself)
#   scripts/pg_throwaway.sh restart DIR # starts a stopped one again, on its port
#
# Needs PostgreSQL's server binaries (Debian: apt-get install postgresql). As root it runs the
# cluster as the `postgres` user (initdb refuses root). Password authentication, user owp,
# database owp; nothing listens beyond 127.0.0.1.
set -euo pipefail

# The database server outlives this script: it must not inherit the caller's descriptors
# (a parent waiting for a pipe to close, as Foundation's Process does, would wait forever).
for fd in /proc/$$/fd/*; do
  fd="${fd##*/}"
  if [[ "$fd" =~ ^[0-9]+$ && "$fd" -gt 2 ]]; then eval "exec $fd>&-" 2>/dev/null || true; fi
done

command="${1:?usage: $0 start|stop|restart DIR}"
dir="${2:?usage: $0 start|stop|restart DIR}"

bindir="${PG_BINDIR:-}"
if [[ -z "$bindir" ]]; then
  for candidate in /usr/lib/postgresql/*/bin; do [[ -x "$candidate/initdb" ]] && bindir="$candidate"; done
fi
if [[ -z "$bindir" || ! -x "$bindir/initdb" ]]; then
  echo "pg_throwaway: no PostgreSQL server binaries (install the postgresql package, or set PG_BINDIR)" >&2
  exit 3
fi

as_owner() {
  if [[ "$(id -u)" == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case "$command" in
  start)
    mkdir -p "$dir"
    dir="$(cd "$dir" && pwd)"
    if [[ "$(id -u)" == 0 ]]; then chown postgres "$dir"; fi
    port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
    password="owp-test-$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
    printf '%s\n' "$password" > "$dir.pw"
    if [[ "$(id -u)" == 0 ]]; then chown postgres "$dir.pw"; fi
    as_owner "$bindir/initdb" -D "$dir/data" -U owp --pwfile="$dir.pw" -A scram-sha-256 -E UTF8 >"$dir/initdb.log" 2>&1
    rm -f "$dir.pw"
    echo "$port" > "$dir/port"
    as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 \
      -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off -c max_connections=200" start >/dev/null 2>&1
    as_owner env PGPASSWORD="$password" "$bindir/createdb" -w -h 127.0.0.1 -p "$port" -U owp owp </dev/null
    echo "postgres://owp:$password@127.0.0.1:$port/owp?sslmode=disable"
    ;;
  stop)
    as_owner "$bindir/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null || true
    ;;
  restart)
    port="$(cat "$dir/port")"
    as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 \
      -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off -c max_connections=200" start >/dev/null 2>&1
    ;;
  *)
    echo "usage: $0 start|stop|restart DIR" >&2
    exit 2
    ;;
esac
