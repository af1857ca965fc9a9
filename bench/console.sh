#!/usr/bin/env bash
# Console page-load budget (issue 14, "Must show"): User page p99 with 1M projected users
# (target < 20 ms server time) and the console's assets gzip-compressed (target < 100 KB total).
#
#   bash bench/console.sh                 # 1,000,000 users
#   USERS=100000 bash bench/console.sh    # quick run
#
# Steps: release build → private redis-server → seed the firehose directly
# (examples/seed_firehose.rs, 3 events per user, 200 tenants) → `okta-adapter serve` projects it
# (wait for lag 0) → examples/console_load.rs signs in with the dev sign-in as support and asks
# for random users' pages (every read audited, as in production) → gzip sizes of
# console/assets/* → Markdown on stdout and in bench/results/console-latest.md.
#
# Knobs: USERS=1000000 TENANTS=200 CONCURRENCY=4 DURATION=15 WARMUP=2 SKIP_BUILD=1
#        PROFILE=release (PROFILE=debug: the unoptimised build, for a quick and pessimistic number)
set -euo pipefail
USERS=${USERS:-1000000}
TENANTS=${TENANTS:-200}
CONCURRENCY=${CONCURRENCY:-4}
DURATION=${DURATION:-15}
WARMUP=${WARMUP:-2}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
PROFILE=${PROFILE:-release}
BIN="$TARGET/$PROFILE/okta-adapter"
EX="$TARGET/$PROFILE/examples"
OUT=${OUT:-$ROOT/bench/results/console-latest.md}
mkdir -p "$(dirname "$OUT")"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/okta-console-bench.XXXXXX")
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM
log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

[[ ${SKIP_BUILD:-0} == 1 ]] || cargo build $([[ $PROFILE == release ]] && echo --release) --quiet --bin okta-adapter --example seed_firehose --example console_load

RPORT=$(free_port)
redis-server --port "$RPORT" --bind 127.0.0.1 --save "" --appendonly no --daemonize no \
  --dir "$WORK" --loglevel warning >"$WORK/redis.log" 2>&1 &
PIDS+=("$!")
rc() { redis-cli -h 127.0.0.1 -p "$RPORT" "$@"; }
for _ in $(seq 100); do rc PING >/dev/null 2>&1 && break; sleep 0.1; done
REDIS_URL="redis://127.0.0.1:$RPORT"
log "seeding $USERS users"
SEED=$("$EX/seed_firehose" --url "$REDIS_URL" --prefix bench --users "$USERS" --tenants "$TENANTS")
log "seed: $SEED"
HPORT=$(free_port)
env OKTA_ADAPTER__REDIS__URL="$REDIS_URL" OKTA_ADAPTER__REDIS__PREFIX=bench \
  OKTA_ADAPTER__HTTP__LISTEN="127.0.0.1:$HPORT" OKTA_ADAPTER__HOOKS__SECRETS='["bench"]' \
  OKTA_ADAPTER__LOG__LEVEL=warn OKTA_ADAPTER__CONSOLE__DEV_SIGN_IN=true \
  "$BIN" serve >"$WORK/adapter.log" 2>&1 &
PIDS+=("$!")
log "waiting for the projection (lag 0)"
T0=$SECONDS
while :; do
  lag=$(rc XINFO GROUPS "bench:{events}:firehose" 2>/dev/null | tr -d '\r' |
    awk 'NR % 2 == 1 { k = $0; next } k == "name" { n = $0 } k == "lag" && n == "projections" { print $0 }')
  pending=$(rc XINFO GROUPS "bench:{events}:firehose" 2>/dev/null | tr -d '\r' |
    awk 'NR % 2 == 1 { k = $0; next } k == "name" { n = $0 } k == "pending" && n == "projections" { print $0 }')
  [[ ${lag:-x} == 0 && ${pending:-x} == 0 ]] && break
  ((SECONDS - T0 < 1800)) || { log "projection did not finish"; exit 1; }
  sleep 1
done
log "projected in $((SECONDS - T0)) s; users indexed: $(rc ZCARD bench:idx:users)"
LOAD=$("$EX/console_load" --url "http://127.0.0.1:$HPORT" --users "$USERS" \
  --concurrency "$CONCURRENCY" --duration "$DURATION" --warmup "$WARMUP")
log "load: $LOAD"
ASSETS=""
TOTAL_RAW=0
TOTAL_GZ=0
for f in console/assets/*; do
  raw=$(wc -c <"$f")
  gz=$(gzip -9 -c "$f" | wc -c)
  TOTAL_RAW=$((TOTAL_RAW + raw))
  TOTAL_GZ=$((TOTAL_GZ + gz))
  ASSETS+="| $(basename "$f") | $raw B | $gz B |"$'\n'
done
j() { jq -r "$1" <<<"$LOAD"; }
{
  echo "# Console benchmark — $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo
  echo "Machine: $(nproc) cores, $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo); load average before the run: $(cut -d' ' -f1-3 /proc/loadavg); commit $(git rev-parse --short HEAD)."
  echo "Command: \`USERS=$USERS PROFILE=$PROFILE CONCURRENCY=$CONCURRENCY DURATION=$DURATION bash bench/console.sh\`"
  echo
  echo "| metric | value | target |"
  echo "|---|---|---|"
  echo "| projected users | $USERS ($TENANTS tenants) | |"
  echo "| **User page (support, audited), p99** | **$(j .p99_ms) ms** (p50 $(j .p50_ms), p90 $(j .p90_ms), max $(j .max_ms) ms; $(j .requests_per_sec) pages/s at concurrency $CONCURRENCY; $(j .avg_page_bytes) B per page) | < 20 ms |"
  echo "| **console assets, gzip -9 total** | **$TOTAL_GZ B** ($TOTAL_RAW B uncompressed) | < 100 KB |"
  echo
  echo "| asset | size | gzip -9 |"
  echo "|---|---:|---:|"
  printf '%s' "$ASSETS"
} >"$OUT"
cat "$OUT"
