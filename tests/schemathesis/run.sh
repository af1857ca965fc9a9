#!/usr/bin/env bash
# Schema-driven API check: runs schemathesis against the adapter's own /openapi.json.
#
# Starts a private redis-server and the adapter on free ports, creates an operator and a support
# key with the CLI, runs schemathesis once per key (bounded examples and time) and stops
# everything it started. Exits non-zero on any schemathesis failure.
#
#   tests/schemathesis/run.sh            # needs: redis-server, python3; builds the adapter
#   SCHEMATHESIS=/path/to/schemathesis tests/schemathesis/run.sh
#
# MAX_EXAMPLES (default 20) and MAX_TIME (seconds per run, default 60) bound the work.
set -euo pipefail
cd "$(dirname "$0")/../.."

MAX_EXAMPLES="${MAX_EXAMPLES:-20}"
MAX_TIME="${MAX_TIME:-60}"
TARGET="${CARGO_TARGET_DIR:-target}"
ST="${SCHEMATHESIS:-schemathesis}"

cargo build --quiet --bin okta-adapter
cargo build --quiet -p okta-sim --bin okta-sim
BIN="$TARGET/debug/okta-adapter"
SIM_BIN="$TARGET/debug/okta-sim"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
WORK="$(mktemp -d)"
REDIS_PORT="$(free_port)"
HTTP_PORT="$(free_port)"
SIM_PORT="$(free_port)"
SIM_PID=""
REDIS_PID=""
APP_PID=""
cleanup() {
  [ -n "$APP_PID" ] && kill "$APP_PID" 2>/dev/null && wait "$APP_PID" 2>/dev/null || true
  [ -n "$SIM_PID" ] && kill "$SIM_PID" 2>/dev/null && wait "$SIM_PID" 2>/dev/null || true
  [ -n "$REDIS_PID" ] && kill "$REDIS_PID" 2>/dev/null && wait "$REDIS_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
  --dir "$WORK" --logfile "$WORK/redis.log" &
REDIS_PID=$!

export OKTA_ADAPTER__REDIS__URL="redis://127.0.0.1:$REDIS_PORT"
export OKTA_ADAPTER__REDIS__PREFIX="schemathesis"
export OKTA_ADAPTER__HTTP__LISTEN="127.0.0.1:$HTTP_PORT"
export OKTA_ADAPTER__HOOKS__SECRETS='["schemathesis-hook-secret"]'
export OKTA_ADAPTER__LOG__LEVEL="warn"
export OKTA_ADAPTER__REPORT__ENABLED="false"
# Okta is the in-repo simulator (no event hook, a limit no run reaches): actions get as far as
# the user lookup (404 for generated ids); tenant plans and applies (the `Tenants` tag) read and
# write the simulator as they would Okta, so their answers are the real ones, not a 5xx for an
# unreachable Okta.
"$SIM_BIN" --listen "127.0.0.1:$SIM_PORT" --token schemathesis-sim-token --limit 1000000 \
  >"$WORK/sim.log" 2>&1 &
SIM_PID=$!
export OKTA_ADAPTER__OKTA__ORG_URL="http://127.0.0.1:$SIM_PORT"
export OKTA_ADAPTER__OKTA__API_TOKEN="schemathesis-sim-token"

for _ in $(seq 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done

"$BIN" serve 2>"$WORK/adapter.log" &
APP_PID=$!
BASE="http://127.0.0.1:$HTTP_PORT"
up() { python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=1)' "$BASE/healthz" 2>/dev/null; }
for _ in $(seq 100); do up && break; sleep 0.1; done
up || { echo "the adapter did not start:" >&2; cat "$WORK/adapter.log" >&2; exit 1; }

OPERATOR="$("$BIN" keys create --role operator)"
SUPPORT="$("$BIN" keys create --role support)"

status=0
# Run from the scratch directory: schemathesis keeps a cache (.schemathesis/) in its working
# directory, which must not land in the checkout.
case "$ST" in */*) ST="$(cd "$(dirname "$ST")" && pwd)/$(basename "$ST")" ;; esac
run() {
  local key="$1"; shift
  (cd "$WORK" && "$ST" run "$BASE/openapi.json" \
    --header "Authorization: Bearer $key" \
    --phases examples,coverage,fuzzing \
    --max-examples "$MAX_EXAMPLES" \
    --max-time "$MAX_TIME" \
    --workers 1 \
    --request-timeout 10 \
    --exclude-checks positive_data_acceptance,ignored_auth \
    --suppress-health-check all \
    --seed 1 \
    "$@") || status=1
}
# Support keys read users and run actions; operator keys manage keys, jobs and reports.
run "$SUPPORT" --include-tag Users
run "$OPERATOR" --exclude-tag Users

if [ "$status" -ne 0 ]; then
  echo "schemathesis found failures; adapter log:" >&2
  tail -n 50 "$WORK/adapter.log" >&2
fi
exit "$status"
