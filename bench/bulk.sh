#!/usr/bin/env bash
# Bulk job benchmark: `bash bench/bulk.sh` (knobs: ROWS=100000 LIMIT=600 WINDOW_MS=1000
# CONCURRENCY=16: Okta's 600/minute run 60 times faster).
#
# A create job of ROWS users against the Okta simulator with a scaled rate limit (LIMIT requests
# per WINDOW_MS for /api/v1/users, i.e. "600/minute" run faster), through the real binaries on
# 127.0.0.1: redis-server, `okta-sim` (crates/okta-sim), `okta-adapter serve`. Reports the fraction of
# the allowed rate (LIMIT x (1 - okta.headroom) per window) actually used, the 429s the
# simulator answered, the adapter's peak memory (VmHWM), and what a 1,000,000-user migration
# takes at Okta's real 600/min. Everything is stopped on exit.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

ROWS=${ROWS:-100000}
LIMIT=${LIMIT:-600}
WINDOW_MS=${WINDOW_MS:-1000}
HEADROOM=${HEADROOM:-0.1}
CONCURRENCY=${CONCURRENCY:-16}
OUT=bench/results/bulk-latest.md
mkdir -p bench/results
for tool in cargo redis-server redis-cli curl jq awk; do
  command -v "$tool" >/dev/null || { echo "bulk.sh: \`$tool\` is required" >&2; exit 1; }
done

cargo build --release --workspace --bins >&2
BIN=target/release/okta-adapter
TMP=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$TMP"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

RPORT=$(free_port); SPORT=$(free_port); APORT=$(free_port)
redis-server --port "$RPORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$TMP" --daemonize no >/dev/null &
PIDS+=($!)
until redis-cli -p "$RPORT" ping >/dev/null 2>&1; do sleep 0.1; done

target/release/okta-sim --listen "127.0.0.1:$SPORT" --limit "$LIMIT" --window-ms "$WINDOW_MS" 2>/dev/null &
PIDS+=($!)

export OKTA_ADAPTER__REDIS__URL="redis://127.0.0.1:$RPORT"
export OKTA_ADAPTER__REDIS__PREFIX=bench
export OKTA_ADAPTER__HTTP__LISTEN="127.0.0.1:$APORT"
export OKTA_ADAPTER__HOOKS__SECRETS='["bench"]'
export OKTA_ADAPTER__LOG__LEVEL=warn
export OKTA_ADAPTER__OKTA__ORG_URL="http://127.0.0.1:$SPORT"
export OKTA_ADAPTER__OKTA__API_TOKEN=sim-token
export OKTA_ADAPTER__OKTA__RATE_WINDOW_MS="$WINDOW_MS"
export OKTA_ADAPTER__OKTA__DEFAULT_LIMIT="$LIMIT"
export OKTA_ADAPTER__OKTA__HEADROOM="$HEADROOM"
export OKTA_ADAPTER__JOBS__CONCURRENCY="$CONCURRENCY"
$BIN serve &
APID=$!
PIDS+=($APID)
until curl -sf "http://127.0.0.1:$APORT/readyz" >/dev/null; do sleep 0.1; done
KEY=$($BIN keys create --role operator 2>/dev/null)

awk -v n="$ROWS" 'BEGIN { print "login,email,firstName,lastName,department";
  for (i = 0; i < n; i++) printf "bulk%d@example.com,bulk%d@example.com,First%d,Last%d,Dept%d\n", i, i, i, i, i % 50 }' > "$TMP/users.csv"
SIZE=$(stat -c %s "$TMP/users.csv")

START=$(date +%s.%N)
JOB=$(curl -sf -X POST "http://127.0.0.1:$APORT/api/v1/jobs?kind=create" -H "authorization: Bearer $KEY" \
  -H 'content-type: text/csv' --data-binary @"$TMP/users.csv")
UPLOADED=$(date +%s.%N)
ID=$(jq -r .id <<<"$JOB")
echo "job $ID: $(jq -c '{total,valid,invalid,state}' <<<"$JOB") (upload of $SIZE bytes took $(awk -v a="$START" -v b="$UPLOADED" 'BEGIN{printf "%.2f", b-a}') s)" >&2
while :; do
  J=$(curl -sf "http://127.0.0.1:$APORT/api/v1/jobs/$ID" -H "authorization: Bearer $KEY")
  [ "$(jq -r .pending <<<"$J")" = 0 ] && [ "$(jq -r .state <<<"$J")" = done ] && break
  echo "  $(jq -c '{done,failed,pending,rows_per_second,eta_seconds}' <<<"$J")" >&2
  sleep 5
done
END=$(date +%s.%N)
STATS=$(curl -sf "http://127.0.0.1:$SPORT/sim/stats")
HWM_KB=$(awk '/VmHWM/ {print $2}' /proc/$APID/status)

DONE=$(jq .done <<<"$J"); FAILED=$(jq .failed <<<"$J")
STARTED=$(jq -r .started <<<"$J"); FINISHED=$(jq -r .finished <<<"$J")
RUN_S=$(python3 -c "from datetime import datetime as d; f=lambda s: d.fromisoformat(s.replace('Z','+00:00')); print((f('$FINISHED')-f('$STARTED')).total_seconds())")
ALLOWED=$(awk -v l="$LIMIT" -v h="$HEADROOM" -v w="$WINDOW_MS" 'BEGIN{printf "%.1f", l*(1-h)/(w/1000)}')
RATE=$(awk -v d="$DONE" -v f="$FAILED" -v s="$RUN_S" 'BEGIN{printf "%.1f", (d+f)/s}')
FRACTION=$(awk -v r="$RATE" -v a="$ALLOWED" 'BEGIN{printf "%.3f", r/a}')
R429=$(jq .rejected_429 <<<"$STATS")
BUSIEST=$(jq '.busiest_window["users-create-list"]' <<<"$STATS")
MIGRATION_H=$(awk -v f="$FRACTION" -v h="$HEADROOM" 'BEGIN{printf "%.1f", 1000000/(600*(1-h)*f)/60}')

cat > "$OUT" <<MD
### Bulk jobs — \`bash bench/bulk.sh\` (ROWS=$ROWS LIMIT=$LIMIT WINDOW_MS=$WINDOW_MS HEADROOM=$HEADROOM CONCURRENCY=$CONCURRENCY), $(date -u +%F), $(nproc) cores, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)

| Measure | Value |
|---|---|
| rows | $ROWS created ($DONE done, $FAILED failed), file $SIZE bytes |
| run time (first row → last row) | ${RUN_S} s |
| rate achieved | $RATE rows/s |
| rate allowed (limit × (1 − headroom)) | $ALLOWED rows/s |
| **fraction of the allowed rate used** | **$FRACTION** |
| 429s answered by the simulator | $R429 |
| busiest window seen by the simulator | $BUSIEST of $LIMIT |
| adapter peak RSS (VmHWM) | $((HWM_KB / 1024)) MB |
| 1,000,000 users at Okta's 600/min (× fraction, headroom $HEADROOM) | ${MIGRATION_H} h |
MD
cat "$OUT"
