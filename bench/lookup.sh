#!/usr/bin/env bash
# Lookup benchmark (issue 3, "Must show"): projection apply rate, Redis memory per projected user,
# and GET /api/v1/users/{login} latency at concurrency 64 — against a private redis-server and the
# release binary, everything on 127.0.0.1.
#
#   bash bench/lookup.sh                  # 1,000,000 users (3,000,000 events)
#   USERS=100000 bash bench/lookup.sh     # quick run
#
# Steps: build → private redis-server (--save "" --appendonly no) → seed the firehose directly
# (examples/seed_firehose.rs: create + activate + group add per user, 200 tenants) → used_memory
# → start `okta-adapter serve` and time the projection group to lag 0 / pending 0 → used_memory
# → support key → examples/lookup_load.rs (hits, then MISS_PCT% misses, then a client-admin key
# whose reads are not audited) → optionally the apply rate with 2 adapter processes on a copy of
# the firehose → Markdown table on stdout and in bench/results/lookup-latest.md.
#
# Knobs (environment):
#   USERS=1000000  TENANTS=200         users to seed (3 events each) and tenants
#   CONCURRENCY=64 DURATION=15 WARMUP=2  load generator: workers, timed seconds, warm-up seconds
#   MISS_PCT=10                        a second load run with this % of unknown logins (0 = skip)
#   AUDIT_COMPARE=1                    a third run with a client-admin key (no audit write)
#   BATCH=100                          OKTA_ADAPTER__PROJECTION__BATCH (the shipped default)
#   TWO_CONSUMERS=1 TWO_WINDOW=60      apply rate with 2 adapter processes (at most TWO_WINDOW s)
#   PROJECTION_TIMEOUT=900             give up waiting for the projection after this many seconds
#   REDIS_ARGS=""                      extra redis-server arguments, e.g.
#                                      "--hash-max-listpack-value 128 --zset-max-listpack-value 128"
#   LOADGEN_THREADS=1                  tokio threads of the load generator
#   OUT=bench/results/lookup-latest.md  where the Markdown report goes
#   SKIP_BUILD=1                       use the binaries already in target/release
#   WAIT_QUIET=30                      wait up to this long for other processes to go quiet
#   PERF=1                             `perf record` the adapter during the hits run (needs perf)
set -euo pipefail

USERS=${USERS:-1000000}
TENANTS=${TENANTS:-200}
CONCURRENCY=${CONCURRENCY:-64}
DURATION=${DURATION:-15}
WARMUP=${WARMUP:-2}
MISS_PCT=${MISS_PCT:-10}
AUDIT_COMPARE=${AUDIT_COMPARE:-1}
BATCH=${BATCH:-100}
TWO_CONSUMERS=${TWO_CONSUMERS:-1}
TWO_WINDOW=${TWO_WINDOW:-60}
PROJECTION_TIMEOUT=${PROJECTION_TIMEOUT:-900}
REDIS_ARGS=${REDIS_ARGS:-}
LOADGEN_THREADS=${LOADGEN_THREADS:-1}
PERF=${PERF:-0}
WAIT_QUIET=${WAIT_QUIET:-30}

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
RESULTS="$ROOT/bench/results"
OUT=${OUT:-$RESULTS/lookup-latest.md}
mkdir -p "$RESULTS"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/okta-lookup-bench.XXXXXX")
EVENTS=$((USERS * 3))
PREFIX=bench
PREFIX2=bench2
FIREHOSE="$PREFIX:{events}:firehose"
FIREHOSE2="$PREFIX2:{events}:firehose"
GROUP=projections
BIN="$ROOT/target/release/okta-adapter"
EX="$ROOT/target/release/examples"
TCK=$(getconf CLK_TCK)

PIDS=()
cleanup() {
  local rc=$?
  for pid in "${PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  if [[ $rc -ne 0 ]]; then
    for log in "$WORK"/adapter-*.log; do
      [[ -s $log ]] && { echo "--- last lines of $log" >&2; tail -n 20 "$log" >&2; }
    done
  fi
  rm -rf "$WORK"
  exit $rc
}
trap cleanup EXIT INT TERM

log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }
now() { date +%s.%N; }
calc() { awk "BEGIN { printf \"%s\", $* }"; }
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
# utime + stime of a process, in clock ticks.
ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
# Busy clock ticks of the whole machine (user nice system irq softirq steal).
busy() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat; }

# ---------------------------------------------------------------------------------------------
log "building (release)"
# The two examples by name: another benchmark's example may be mid-edit.
[[ ${SKIP_BUILD:-0} == 1 ]] || cargo build --release --quiet --bin okta-adapter --example seed_firehose --example lookup_load

# Other processes' CPU skews every number on a shared machine: wait (up to WAIT_QUIET s) for
# them to use less than 0.3 cores, and report what they used.
deadline=$((SECONDS + WAIT_QUIET))
while :; do
  B0=$(busy)
  sleep 3
  IDLE_LOAD=$(calc "($(busy) - $B0) / $TCK / 3")
  awk "BEGIN { exit !($IDLE_LOAD < 0.3) }" && break
  if ((SECONDS >= deadline)); then
    log "WARNING: other processes keep $(printf '%.2f' "$IDLE_LOAD") of $(nproc) cores busy; the numbers will be lower than on a quiet machine"
    break
  fi
  log "other processes use $(printf '%.2f' "$IDLE_LOAD") of $(nproc) cores; waiting for a quieter machine"
done

RPORT=$(free_port)
# shellcheck disable=SC2086 # REDIS_ARGS is a list of arguments
redis-server --port "$RPORT" --bind 127.0.0.1 --save "" --appendonly no --daemonize no \
  --dir "$WORK" --loglevel warning $REDIS_ARGS >"$WORK/redis.log" 2>&1 &
RPID=$!
PIDS+=("$RPID")
rc() { redis-cli -h 127.0.0.1 -p "$RPORT" "$@"; }
for _ in $(seq 100); do rc PING >/dev/null 2>&1 && break; sleep 0.1; done
rc PING >/dev/null
REDIS_URL="redis://127.0.0.1:$RPORT"
rc CONFIG SET slowlog-log-slower-than 5000 >/dev/null
info() { rc INFO "$1" | tr -d '\r' | awk -F: -v k="$2" '$1 == k { print $2 }'; }
used_memory() { info memory used_memory; }

MEM0=$(used_memory)
log "redis-server $(redis-server --version | awk '{print $3}') on port $RPORT; seeding $USERS users ($EVENTS events)"
SEED_JSON=$("$EX/seed_firehose" --url "$REDIS_URL" --prefix "$PREFIX" --users "$USERS" --tenants "$TENANTS")
log "seed: $SEED_JSON"
MEM_SEEDED=$(used_memory)
FIREHOSE_BYTES=$((MEM_SEEDED - MEM0))
[[ $(rc XLEN "$FIREHOSE") -eq $EVENTS ]] || { log "firehose has $(rc XLEN "$FIREHOSE") entries, expected $EVENTS"; exit 1; }

if [[ $TWO_CONSUMERS == 1 ]]; then
  log "copying the firehose for the 2-process run"
  rc COPY "$FIREHOSE" "$FIREHOSE2" >/dev/null
fi

adapter_env() {
  exec env OKTA_ADAPTER__REDIS__URL="$REDIS_URL" OKTA_ADAPTER__REDIS__PREFIX="$1" \
    OKTA_ADAPTER__HTTP__LISTEN="127.0.0.1:$2" OKTA_ADAPTER__HOOKS__SECRETS='["bench"]' \
    OKTA_ADAPTER__LOG__LEVEL=warn OKTA_ADAPTER__PROJECTION__BATCH="$BATCH" \
    OKTA_ADAPTER__PROJECTION__CONSUMER="$3" "${@:4}"
}
wait_healthy() {
  for _ in $(seq 200); do
    curl -fsS "http://127.0.0.1:$1/healthz" >/dev/null 2>&1 && return 0
    sleep 0.05
  done
  log "adapter on port $1 did not become healthy"
  return 1
}
# "pending entries-read lag" of the projection group on stream $1 (empty until it exists).
group_state() {
  rc XINFO GROUPS "$1" 2>/dev/null | tr -d '\r' | awk -v g="$GROUP" '
    NR % 2 == 1 { k = $0; next }
    k == "name" { n = $0 } k == "pending" { p = $0 } k == "entries-read" { e = $0 }
    k == "lag" && n == g { print p, (e == "" ? 0 : e), ($0 == "" ? -1 : $0) }'
}
# Waits until the group on $1 has lag 0 and pending 0 (or $2 seconds pass); samples go to $3.
# Prints "seconds entries_read steady_events_per_sec"; takes a `top` snapshot half-way into $4.
wait_projected() {
  local stream=$1 limit=$2 samples=$3 topfile=$4 t0 t st p e l topped=0
  t0=$(now)
  : >"$samples"
  while :; do
    st=$(group_state "$stream")
    t=$(calc "$(now) - $t0")
    if [[ -n $st ]]; then
      read -r p e l <<<"$st"
      echo "$t $e $p $l" >>"$samples"
      if [[ $topped == 0 && $e -ge $((EVENTS / 2)) ]]; then
        top -b -n1 -w 200 | head -n 15 >"$topfile"
        topped=1
      fi
      if [[ $l == 0 && $p == 0 && $e -ge $EVENTS ]]; then break; fi
    fi
    if awk "BEGIN { exit !($t > $limit) }"; then break; fi
    sleep 0.2
  done
  # Steady rate: between the samples where 10 % and 90 % of the events read had been read.
  local steady
  steady=$(awk -v lo=$((${e:-0} / 10)) -v hi=$((${e:-0} * 9 / 10)) '
    !a && $2 >= lo { ta = $1; ea = $2; a = 1 }
    !b && $2 >= hi { tb = $1; eb = $2; b = 1 }
    END { if (a && b && tb > ta) printf "%.0f", (eb - ea) / (tb - ta); else print "n/a" }' "$samples")
  echo "$t ${e:-0} $steady"
}
commandstats() {
  rc INFO commandstats | tr -d '\r' | awk -F'[:,=]' '/^cmdstat_/ {
      sub(/^cmdstat_/, "", $1); printf "%s %d %.2f %.2f\n", $1, $3, $7, $5 / 1e6 }' |
    sort -k4 -nr | awk 'BEGIN { print "| command | calls | µs/call | total CPU s |"; print "|---|---:|---:|---:|" }
      { printf "| %s | %d | %s | %s |\n", $1, $2, $3, $4 }'
}
slowlog_summary() {
  local n
  n=$(rc SLOWLOG LEN)
  echo "SLOWLOG (> 5 ms): $n entries"
  if [[ $n -gt 0 ]]; then rc SLOWLOG GET 3 | tr -d '\r\000' | head -n 40; fi
}
metric() { curl -fsS "http://127.0.0.1:$1/metrics" | grep -E "^$2" || true; }

# ---------------------------------------------------------------------------------------------
# Projection apply rate, one adapter process.
MEM_BEFORE=$(used_memory)
rc CONFIG RESETSTAT >/dev/null
rc SLOWLOG RESET >/dev/null
HPORT=$(free_port)
log "starting okta-adapter serve (projection batch $BATCH); waiting for lag 0 / pending 0"
R_T0=$(ticks "$RPID")
M_T0=$(busy)
adapter_env "$PREFIX" "$HPORT" bench-a "$BIN" serve >"$WORK/adapter-a.log" 2>&1 &
APID=$!
PIDS+=("$APID")
read -r P1_SECS P1_READ P1_STEADY < <(wait_projected "$FIREHOSE" "$PROJECTION_TIMEOUT" "$WORK/samples-1.txt" "$WORK/top-projection.txt")
A_CPU=$(calc "$(ticks "$APID") / $TCK / $P1_SECS")
R_CPU=$(calc "($(ticks "$RPID") - $R_T0) / $TCK / $P1_SECS")
O_CPU=$(calc "($(busy) - $M_T0) / $TCK / $P1_SECS - $A_CPU - $R_CPU")
P1_RATE=$(calc "$P1_READ / $P1_SECS")
if [[ $P1_READ -lt $EVENTS ]]; then
  log "projection did not finish within ${PROJECTION_TIMEOUT}s ($P1_READ of $EVENTS events read)"
  exit 1
fi
log "projected $EVENTS events in ${P1_SECS}s: $(printf '%.0f' "$P1_RATE") events/s (steady $P1_STEADY); adapter $A_CPU cores, redis $R_CPU cores, other processes $O_CPU cores"
PROJ_STATS=$(commandstats)
PROJ_SLOW=$(slowlog_summary)
wait_healthy "$HPORT"
PROJ_METRICS=$(metric "$HPORT" 'okta_adapter_projection_(batch_seconds|applied_total|failed_total|dead_lettered_total)')
MEM_AFTER=$(used_memory)
PER_USER=$(calc "($MEM_AFTER - $MEM_BEFORE) / $USERS")
DEAD=$(rc XLEN "$PREFIX:dead-letter")

# Memory of sample keys and of the indexes.
uid() { printf '00u%017d' "$1"; }
SAMPLES=""
for n in 0 $((USERS / 2)) $((USERS - 1)); do
  u=$(uid "$n")
  h="$PREFIX:u:{$u}"
  SAMPLES+="| user$n | $(rc MEMORY USAGE "$h") B ($(rc OBJECT ENCODING "$h"), $(rc HLEN "$h") fields) |"$'\n'
done
IDX_LOGIN=$(rc MEMORY USAGE "$PREFIX:idx:login" SAMPLES 0)
IDX_USERS=$(rc MEMORY USAGE "$PREFIX:idx:users" SAMPLES 0)
IDX_TENANTS=0
for t in $(seq 0 $((TENANTS - 1))); do
  v=$(rc MEMORY USAGE "$PREFIX:idx:tenant:t$t" SAMPLES 0)
  IDX_TENANTS=$((IDX_TENANTS + ${v:-0}))
done
IDX_ENC="login $(rc OBJECT ENCODING "$PREFIX:idx:login"), users $(rc OBJECT ENCODING "$PREFIX:idx:users"), tenant $(rc OBJECT ENCODING "$PREFIX:idx:tenant:t0")"
U0=$(uid 0)
SAMPLE_HASH=$(rc HGETALL "$PREFIX:u:{$U0}" | tr -d '\r' | paste -d' ' - - | sed 's/^/    /')
DBSIZE=$(rc DBSIZE)

# ---------------------------------------------------------------------------------------------
# Lookup latency.
TOKEN=$(adapter_env "$PREFIX" 0 keytool "$BIN" keys create --role support 2>/dev/null)
ADMIN_TOKEN=$(adapter_env "$PREFIX" 0 keytool "$BIN" keys create --role client-admin --tenant t0 2>/dev/null)
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$HPORT/api/v1/users/user0@example.com")
[[ $code == 200 ]] || { log "sanity lookup of user0@example.com answered $code"; exit 1; }

load() {
  local name=$1
  shift
  rc CONFIG RESETSTAT >/dev/null
  rc SLOWLOG RESET >/dev/null
  (sleep "$(calc "$WARMUP + $DURATION / 2")" && top -b -n1 -w 200 | head -n 15 >"$WORK/top-$name.txt") &
  PIDS+=("$!")
  if [[ $PERF == 1 && $name == hits ]]; then
    (sleep "$WARMUP" && perf record -q -F 499 -g -o "$WORK/perf.data" -p "$APID" -- sleep "$(calc "$DURATION / 2")" >/dev/null 2>&1) &
    PIDS+=("$!")
  fi
  local json
  json=$(LOOKUP_TOKEN=${LOAD_TOKEN:-$TOKEN} "$EX/lookup_load" --url "http://127.0.0.1:$HPORT" \
    --users "$USERS" --tenants "$TENANTS" --concurrency "$CONCURRENCY" --duration "$DURATION" \
    --warmup "$WARMUP" --threads "$LOADGEN_THREADS" --cpu-pid "adapter=$APID" --cpu-pid "redis=$RPID" "$@") || {
    log "load run $name failed: $json"
    exit 1
  }
  log "load $name: $json"
  echo "$json" >"$WORK/load-$name.json"
  commandstats >"$WORK/cmdstats-$name.md"
  if [[ -s $WORK/perf.data && $name == hits ]]; then
    sleep 1
    {
      echo "perf (adapter, ${DURATION}s/2 of the hits run): by DSO, then top self symbols"
      perf report -i "$WORK/perf.data" --no-children --sort dso --stdio 2>/dev/null | grep -E '^ +[0-9.]+%' | head -n 5
      perf report -i "$WORK/perf.data" --no-children --sort sym --stdio -g none 2>/dev/null | grep -E '^ +[0-9.]+%' | head -n 25 | cut -c1-160
    } >"$WORK/perf-hits.txt" || true
  fi
  slowlog_summary >"$WORK/slowlog-$name.txt"
}
AUDIT_LEN0=$(rc XLEN "$PREFIX:audit")
log "lookup load: $CONCURRENCY workers, ${DURATION}s, support key (every read audited)"
load hits
AUDIT_LEN=$(rc XLEN "$PREFIX:audit")
AUDIT_BYTES=$(rc MEMORY USAGE "$PREFIX:audit" SAMPLES 0)
HTTP_METRICS=$(metric "$HPORT" 'okta_adapter_http_request_duration_seconds\{operation="get_user",status="200"')
if [[ $MISS_PCT != 0 ]]; then
  log "lookup load with $MISS_PCT% unknown logins"
  load misses --miss-pct "$MISS_PCT"
fi
if [[ $AUDIT_COMPARE == 1 ]]; then
  log "lookup load with a client-admin key of tenant t0 (reads not audited)"
  LOAD_TOKEN=$ADMIN_TOKEN load noaudit --tenant-index 0
fi

# ---------------------------------------------------------------------------------------------
# Projection apply rate, two adapter processes (on the copy of the firehose).
if [[ $TWO_CONSUMERS == 1 ]]; then
  kill "$APID"
  wait "$APID" 2>/dev/null || true
  rc CONFIG RESETSTAT >/dev/null
  log "2 adapter processes on a copy of the firehose (at most ${TWO_WINDOW}s)"
  R_T0=$(ticks "$RPID")
  M_T0=$(busy)
  P1=$(free_port)
  adapter_env "$PREFIX2" "$P1" bench-b1 "$BIN" serve >"$WORK/adapter-b1.log" 2>&1 &
  B1=$!
  PIDS+=("$B1")
  P2=$(free_port)
  adapter_env "$PREFIX2" "$P2" bench-b2 "$BIN" serve >"$WORK/adapter-b2.log" 2>&1 &
  B2=$!
  PIDS+=("$B2")
  read -r P2_SECS P2_READ P2_STEADY < <(wait_projected "$FIREHOSE2" "$TWO_WINDOW" "$WORK/samples-2.txt" "$WORK/top-projection-2.txt")
  P2_RATE=$(calc "$P2_READ / $P2_SECS")
  B_CPU=$(calc "($(ticks "$B1") + $(ticks "$B2")) / $TCK / $P2_SECS")
  R2_CPU=$(calc "($(ticks "$RPID") - $R_T0) / $TCK / $P2_SECS")
  O2_CPU=$(calc "($(busy) - $M_T0) / $TCK / $P2_SECS - $B_CPU - $R2_CPU")
  P2_DONE=$([[ $P2_READ -ge $EVENTS ]] && echo "all $EVENTS events" || echo "$P2_READ of $EVENTS events in the ${TWO_WINDOW}s window")
  PROJ2_STATS=$(commandstats)
  log "2 processes: $(printf '%.0f' "$P2_RATE") events/s ($P2_DONE); adapters $B_CPU cores, redis $R2_CPU cores, other processes $O2_CPU cores"
fi

# ---------------------------------------------------------------------------------------------
# Report.
j() { jq -r "$2" "$WORK/load-$1.json"; }
r2() { printf '%.2f' "$1"; }
ok() { awk "BEGIN { exit !($1) }" && echo "✅" || echo "❌"; }
CPU_MODEL=$(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)
MEM_TOTAL=$(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
MIB() { calc "$1 / 1048576" | xargs printf '%.0f MiB'; }
{
  echo "# Lookup benchmark — $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo
  echo "Machine: $(nproc) cores, $CPU_MODEL, $MEM_TOTAL RAM; $(uname -sr); redis-server $(redis-server --version | awk '{print $3}'); $(rustc --version | awk '{print $1, $2}'); commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src || echo ' (src/ modified)')."
  echo "Command: \`USERS=$USERS BATCH=$BATCH CONCURRENCY=$CONCURRENCY DURATION=$DURATION MISS_PCT=$MISS_PCT TWO_CONSUMERS=$TWO_CONSUMERS${REDIS_ARGS:+ REDIS_ARGS=\"$REDIS_ARGS\"} bash bench/lookup.sh\`"
  echo "Everything (redis-server, adapter, load generator) shares the $(nproc) cores; other processes used $(printf '%.2f' "$IDLE_LOAD") cores just before the run (see \"other processes\" per phase below: a busy machine lowers every number)."
  echo
  echo "| metric | value | target |"
  echo "|---|---|---|"
  echo "| users / events seeded | $USERS / $EVENTS ($TENANTS tenants) | |"
  echo "| seed (direct pipelined XADD) | $(jq -r '"\(.seconds) s, \(.events_per_sec) events/s, event JSON \(.avg_event_bytes) B"' <<<"$SEED_JSON") | |"
  echo "| firehose memory (used_memory) | $(MIB "$FIREHOSE_BYTES"), $(calc "$FIREHOSE_BYTES / $EVENTS" | xargs printf '%.0f') B/event | |"
  echo "| **projection apply rate, 1 process** | **$(printf '%.0f' "$P1_RATE") events/s** ($EVENTS events in $(printf '%.1f' "$P1_SECS") s; steady 10→90 %: $P1_STEADY/s) | ≥ 20,000 $(ok "$P1_RATE >= 20000") |"
  A_US=$(calc "$A_CPU * $P1_SECS * 1e6 / $EVENTS")
  R_US=$(calc "$R_CPU * $P1_SECS * 1e6 / $EVENTS")
  echo "| CPU during projection | adapter $(r2 "$A_CPU"), redis-server $(r2 "$R_CPU"), other processes $(r2 "$O_CPU") cores | |"
  echo "| CPU per event (projection) | adapter $(printf '%.1f' "$A_US") µs + redis-server $(printf '%.1f' "$R_US") µs: the consumer loop waits for Redis while Redis waits for it, so at these costs one process is bounded by $(calc "1e6 / ($A_US + $R_US)" | xargs printf '%.0f') events/s; Redis alone would allow $(calc "1e6 / $R_US" | xargs printf '%.0f')/s | |"
  if [[ $TWO_CONSUMERS == 1 ]]; then
    echo "| projection apply rate, 2 processes | $(printf '%.0f' "$P2_RATE") events/s ($P2_DONE; steady $P2_STEADY/s); adapters $(r2 "$B_CPU"), redis $(r2 "$R2_CPU"), other processes $(r2 "$O2_CPU") cores | ≥ 20,000 $(ok "$P2_RATE >= 20000") |"
  fi
  echo "| dead-lettered | $DEAD | 0 |"
  echo "| **Redis memory per projected user** | **$(printf '%.0f' "$PER_USER") B** (used_memory $(MIB "$MEM_BEFORE") → $(MIB "$MEM_AFTER")) | < 1024 $(ok "$PER_USER < 1024") |"
  echo "| of which indexes (MEMORY USAGE) | login hash $(calc "$IDX_LOGIN / $USERS" | xargs printf '%.0f') B, users zset $(calc "$IDX_USERS / $USERS" | xargs printf '%.0f') B, tenant zsets $(calc "$IDX_TENANTS / $USERS" | xargs printf '%.0f') B per user ($IDX_ENC) | |"
  echo "| **lookup by login, support key** | **p50 $(j hits .p50_ms) ms, p99 $(j hits .p99_ms) ms**, p99.9 $(j hits .p999_ms) ms, max $(j hits .max_ms) ms; **$(j hits .requests_per_sec) req/s** | p99 < 5 ms $(ok "$(j hits .p99_ms) < 5") |"
  echo "| non-200 for existing logins | $(j hits .hits_non_200) of $(j hits .hits) (transport errors $(j hits .transport_errors), wrong bodies $(j hits .wrong_body)) | 0 |"
  echo "| CPU during lookups | adapter $(j hits .cpu_cores.adapter) ($(calc "$(j hits .cpu_cores.adapter) * 1e6 / $(j hits .requests_per_sec)" | xargs printf '%.0f') µs/request), redis-server $(j hits .cpu_cores.redis), load generator $(j hits .cpu_cores.loadgen), other processes $(calc "$(j hits .cpu_cores.machine) - $(j hits .cpu_cores.adapter) - $(j hits .cpu_cores.redis) - $(j hits .cpu_cores.loadgen)" | xargs printf '%.2f') cores | |"
  L_US=$(calc "($(j hits .cpu_cores.adapter) + $(j hits .cpu_cores.redis) + $(j hits .cpu_cores.loadgen)) * 1e6 / $(j hits .requests_per_sec)")
  echo "| CPU per lookup (adapter + redis + load generator) | $(printf '%.0f' "$L_US") µs: the $(nproc) cores allow at most $(calc "$(nproc) * 1e6 / $L_US" | xargs printf '%.0f') req/s, i.e. a mean latency ≥ $(calc "$CONCURRENCY * $L_US / $(nproc) / 1000" | xargs printf '%.1f') ms at concurrency $CONCURRENCY (closed loop: latency = concurrency / throughput) | |"
  echo "| audit stream | $((AUDIT_LEN - AUDIT_LEN0)) XADDs (one per read), $(calc "$AUDIT_BYTES / ($AUDIT_LEN > 0 ? $AUDIT_LEN : 1)" | xargs printf '%.0f') B/entry in Redis | |"
  if [[ $MISS_PCT != 0 ]]; then
    echo "| lookup, $MISS_PCT % unknown logins | p50 $(j misses .p50_ms) ms, p99 $(j misses .p99_ms) ms, max $(j misses .max_ms) ms; $(j misses .requests_per_sec) req/s; hits non-200 $(j misses .hits_non_200), misses non-404 $(j misses .misses_non_404) | |"
  fi
  if [[ $AUDIT_COMPARE == 1 ]]; then
    echo "| lookup, client-admin key (no audit XADD) | p50 $(j noaudit .p50_ms) ms, p99 $(j noaudit .p99_ms) ms, max $(j noaudit .max_ms) ms; $(j noaudit .requests_per_sec) req/s; adapter $(j noaudit .cpu_cores.adapter), redis $(j noaudit .cpu_cores.redis) cores | |"
  fi
  echo
  echo "Sample keys (\`MEMORY USAGE\`):"
  echo
  echo "| user | hash \`$PREFIX:u:{id}\` (registers and recent events) |"
  echo "|---|---|"
  printf '%s' "$SAMPLES"
  echo
  echo "Keys after projection: $DBSIZE. A user's hash (field, value; format in src/projection/codec.rs):"
  echo
  echo '```'
  echo "$SAMPLE_HASH"
  echo '```'
  echo
  echo "<details><summary>Evidence: projection (1 process)</summary>"
  echo
  echo "Redis commands during the projection (\`INFO commandstats\`):"
  echo
  echo "$PROJ_STATS"
  echo
  echo '```'
  echo "$PROJ_SLOW"
  echo
  echo "$PROJ_METRICS"
  echo
  cat "$WORK/top-projection.txt" 2>/dev/null || true
  echo '```'
  if [[ $TWO_CONSUMERS == 1 ]]; then
    echo
    echo "2 processes, \`INFO commandstats\`:"
    echo
    echo "$PROJ2_STATS"
    echo
    echo '```'
    cat "$WORK/top-projection-2.txt" 2>/dev/null || true
    echo '```'
  fi
  echo
  echo "</details>"
  echo
  for name in hits misses noaudit; do
    [[ -f $WORK/load-$name.json ]] || continue
    echo "<details><summary>Evidence: lookup run \`$name\`</summary>"
    echo
    echo '```'
    cat "$WORK/load-$name.json"
    echo '```'
    echo
    cat "$WORK/cmdstats-$name.md"
    echo
    echo '```'
    cat "$WORK/slowlog-$name.txt"
    if [[ $name == hits ]]; then
      echo "$HTTP_METRICS"
      cat "$WORK/perf-hits.txt" 2>/dev/null || true
    fi
    echo
    cat "$WORK/top-$name.txt" 2>/dev/null || true
    echo '```'
    echo
    echo "</details>"
    echo
  done
} >"$OUT"
cat "$OUT"
log "written to $OUT"
