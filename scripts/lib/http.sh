# Shell helpers shared by the check scripts (source it; it defines functions only).

# A free TCP port on 127.0.0.1.
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# Fetches a URL; prints the body; fails (non-zero) on connection errors and HTTP errors.
http_get() {
    python3 - "$1" <<'PYEOF'
import sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=5) as response:
    sys.stdout.write(response.read().decode())
PYEOF
}

# Waits up to $2 seconds for $1 to answer 200.
wait_http() {
    local url=$1 deadline=$(($(date +%s) + $2))
    until http_get "$url" >/dev/null 2>&1; do
        [ "$(date +%s)" -lt "$deadline" ] || return 1
        sleep 0.2
    done
}
