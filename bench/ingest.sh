#!/usr/bin/env bash
# Reproducible ingest benchmark for okta-adapter: `bash bench/ingest.sh`
#
# What it does, all on 127.0.0.1 and all cleaned up on exit:
#   1. builds the release adapter and the load generator (examples/ingest_load.rs);
#   2. starts a private redis-server on a free port (no persistence, data in a mktemp dir) and
#      the adapter (`okta-adapter serve`, configured by environment only);
#   3. measures redis-benchmark XADD of a 1.5 KB value, pipelined (-P 50) and not (-P 1), plain
#      (the issue's reference) and trimmed with MAXLEN ~ 100000 (like the adapter's streams): the
#      references the adapter is compared against;
#   4. closed-loop maximum throughput for deliveries of 1, 50 and 200 events, trying a few
#      concurrencies each and keeping the best;
#   5. open-loop latency at half the best delivery rate, for batch 1 and batch 50;
#   6. the same half-load runs with the shipped defaults, i.e. with the in-process consumers that
#      read the firehose (`projection.enabled`, `report.enabled`), to show what they cost;
#   7. prints a Markdown table and writes it to bench/results/ingest-latest.md.
#
# Configuration of the adapter under test (everything else is config/default.toml):
#   OKTA_ADAPTER__FIREHOSE__MAXLEN=100000  (default 1 000 000 entries of ~2 KB would take ~2 GB
#                                          of Redis memory; the lifecycle route's default is
#                                          already 100 000, so both streams are trimmed alike,
#                                          as is the trimmed redis-benchmark form)
#   OKTA_ADAPTER__PROJECTION__ENABLED=false and OKTA_ADAPTER__REPORT__ENABLED=false for steps
#                                          4-5: they measure the ingest path alone (the table
#                                          lists the firehose consumer groups each run had).
#   OKTA_ADAPTER__LOG__LEVEL=warn, OKTA_ADAPTER__REDIS__PREFIX=bench, one hook secret.
# Redis is FLUSHALLed before every run, so each run starts from empty streams (trimming starts
# once a stream holds 100 000 entries, i.e. within the first seconds of the batched runs).
#
# Knobs (environment): DURATION (s per run, 10), WARMUP (s, 1), B1_CONC ("16 32 64"),
# B50_CONC ("4 8"), B200_CONC ("2 4"), FIREHOSE_MAXLEN (100000), XADD_VALUE_BYTES (1500),
# LOADGEN_THREADS (1), SKIP_DEFAULTS=1 (skip step 6), QUIET_WAIT (s, 60).
#
# The numbers only mean something on an otherwise idle machine: before every run the script
# waits until other processes use less than a quarter of a core (QUIET_WAIT s in all, so the
# script always ends), and every run reports the CPU used by the adapter, Redis, the load
# generator and everything else ("other"); the table carries a warning when "other" was
# significant. Takes about 3 minutes once the release build is up to date.
# Exit status: non-zero if any delivery was not answered 204 or a sanity check failed.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD

DURATION=${DURATION:-10}
WARMUP=${WARMUP:-1}
B1_CONC=${B1_CONC:-"16 32 64"}
B50_CONC=${B50_CONC:-"4 8"}
B200_CONC=${B200_CONC:-"2 4"}
FIREHOSE_MAXLEN=${FIREHOSE_MAXLEN:-100000}
XADD_VALUE_BYTES=${XADD_VALUE_BYTES:-1500}
LOADGEN_THREADS=${LOADGEN_THREADS:-1}
SKIP_DEFAULTS=${SKIP_DEFAULTS:-0}
QUIET_WAIT=${QUIET_WAIT:-60} # seconds, over the whole script
SECRET=bench-secret
PREFIX=bench
OUT=bench/results/ingest-latest.md

log() { printf '[ingest.sh %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

for tool in cargo redis-server redis-cli redis-benchmark curl jq awk ss; do
  command -v "$tool" >/dev/null || die "\`$tool\` is required (redis-server/redis-cli/redis-benchmark: apt-get install redis-server; jq: apt-get install jq)"
done

# The environment must not change what is measured: drop inherited adapter settings and proxies.
for v in $(compgen -e); do
  case $v in
    OKTA_ADAPTER*|RUST_LOG|http_proxy|https_proxy|HTTP_PROXY|HTTPS_PROXY|ALL_PROXY|all_proxy) unset "$v" ;;
  esac
done

TMP=$(mktemp -d "${TMPDIR:-/tmp}/okta-ingest-bench.XXXXXX")
REDIS_PID=""
ADAPTER_PID=""
CHILD_PID=""

stop_pid() { # pid: TERM, then KILL after 5 s
  local pid=$1
  [ -n "$pid" ] || return 0
  kill "$pid" 2>/dev/null || return 0
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  stop_pid "$CHILD_PID"
  stop_pid "$ADAPTER_PID"
  stop_pid "$REDIS_PID"
  rm -rf "$TMP"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Runs a command in the background (so a signal reaches the trap at once), bounded by `timeout`.
run_bounded() { # seconds command...
  local secs=$1; shift
  timeout --kill-after=5 "$secs" "$@" &
  CHILD_PID=$!
  local rc=0
  wait "$CHILD_PID" || rc=$?
  CHILD_PID=""
  return "$rc"
}

free_port() {
  local p
  for _ in $(seq 200); do
    p=$((20000 + RANDOM % 40000))
    if [ -z "$(ss -Hltn "sport = :$p" 2>/dev/null)" ]; then echo "$p"; return 0; fi
  done
  die "no free port found"
}

rcli() { redis-cli -h 127.0.0.1 -p "$RPORT" "$@"; }

# utime + stime of a process, in clock ticks.
pid_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# Busy clock ticks of the whole machine (100 per core-second): user nice system irq softirq steal.
machine_busy() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat; }
# Waits until the machine is quiet (our own processes are idle between runs); QUIET_WAIT is
# spent over the whole script.
wait_quiet() {
  local first=1 a b busy
  while :; do
    a=$(machine_busy); sleep 1; b=$(machine_busy)
    busy=$((b - a))
    [ "$busy" -le 25 ] && return 0
    if [ "$QUIET_WAIT" -le 0 ]; then
      log "machine busy (other processes use $busy% of a core); running anyway"
      return 0
    fi
    [ "$first" = 1 ] && log "machine busy (other processes use $busy% of a core); waiting (${QUIET_WAIT}s of waiting left)"
    first=0
    QUIET_WAIT=$((QUIET_WAIT - 1))
  done
}

# ---------------------------------------------------------------------------------------------
log "building (release)"
cargo build --release --bin okta-adapter --example ingest_load
ADAPTER_BIN=$ROOT/target/release/okta-adapter
LOADGEN_BIN=$ROOT/target/release/examples/ingest_load

RPORT=$(free_port)
mkdir -p "$TMP/redis"
redis-server --port "$RPORT" --bind 127.0.0.1 --protected-mode yes --save "" --appendonly no \
  --dir "$TMP/redis" --daemonize no --loglevel warning --logfile "$TMP/redis.log" &
REDIS_PID=$!
for _ in $(seq 100); do
  [ "$(rcli ping 2>/dev/null)" = PONG ] && break
  kill -0 "$REDIS_PID" 2>/dev/null || die "redis-server exited: $(cat "$TMP/redis.log")"
  sleep 0.1
done
[ "$(rcli ping 2>/dev/null)" = PONG ] || die "redis-server did not answer on port $RPORT"
REDIS_VERSION=$(rcli info server | awk -F: '/^redis_version/ {print $2}' | tr -d '\r')
log "redis-server $REDIS_VERSION on 127.0.0.1:$RPORT (pid $REDIS_PID)"

APORT=""
start_adapter() { # ingest|defaults
  local consumers=()
  [ "$1" = ingest ] && consumers=(OKTA_ADAPTER__PROJECTION__ENABLED=false OKTA_ADAPTER__REPORT__ENABLED=false)
  APORT=$(free_port)
  env "${consumers[@]}" \
    OKTA_ADAPTER__REDIS__URL="redis://127.0.0.1:$RPORT" \
    OKTA_ADAPTER__HTTP__LISTEN="127.0.0.1:$APORT" \
    OKTA_ADAPTER__HOOKS__SECRETS="[\"$SECRET\"]" \
    OKTA_ADAPTER__LOG__LEVEL=warn \
    OKTA_ADAPTER__REDIS__PREFIX="$PREFIX" \
    OKTA_ADAPTER__FIREHOSE__MAXLEN="$FIREHOSE_MAXLEN" \
    "$ADAPTER_BIN" serve >"$TMP/adapter.log" 2>&1 &
  ADAPTER_PID=$!
  for _ in $(seq 150); do
    curl -sf --noproxy '*' -o /dev/null "http://127.0.0.1:$APORT/readyz" && break
    kill -0 "$ADAPTER_PID" 2>/dev/null || die "okta-adapter exited: $(tail -5 "$TMP/adapter.log")"
    sleep 0.1
  done
  curl -sf --noproxy '*' -o /dev/null "http://127.0.0.1:$APORT/readyz" ||
    die "okta-adapter not ready on port $APORT: $(tail -5 "$TMP/adapter.log")"
  ADAPTER_MODE=$1
  log "okta-adapter on 127.0.0.1:$APORT (pid $ADAPTER_PID, $1 configuration${consumers[*]:+: ${consumers[*]}})"
}

peak_rss_mib() { # pid
  awk '/^VmHWM/ {printf "%.1f", $2 / 1024}' "/proc/$1/status"
}

# FLUSHALL, then /readyz re-creates the consumer groups the adapter expects.
reset_redis() {
  rcli flushall >/dev/null
  curl -sf --noproxy '*' -o /dev/null "http://127.0.0.1:$APORT/readyz" || die "adapter not ready after FLUSHALL"
}

FAILED=0
INGEST_GROUPS=""
RUNS=() # result files, in order
# run_load name batch concurrency [rate] -> result JSON in $TMP/<name>.json
run_load() {
  local name=$1 batch=$2 conc=$3 rate=${4:-}
  local out="$TMP/$name.json"
  reset_redis
  wait_quiet
  log "run $name: batch $batch, concurrency $conc${rate:+, rate $rate/s}, ${DURATION}s"
  local rc=0
  run_bounded $((DURATION + WARMUP + 120)) "$LOADGEN_BIN" \
    --url "http://127.0.0.1:$APORT" --secret "$SECRET" \
    --batch "$batch" --concurrency "$conc" --duration "$DURATION" --warmup "$WARMUP" \
    --threads "$LOADGEN_THREADS" ${rate:+--rate "$rate"} \
    --prebuild-mb "$([ "$batch" -eq 1 ] && echo 512 || echo 1024)" \
    --cpu-pid "adapter=$ADAPTER_PID" --cpu-pid "redis=$REDIS_PID" \
    >"$out" 2>"$TMP/$name.err" || rc=$?
  if [ "$rc" -ne 0 ] || ! jq -e . "$out" >/dev/null 2>&1; then
    log "run $name FAILED (exit $rc):"; cat "$TMP/$name.err" >&2
    FAILED=1
    [ -s "$out" ] && jq -e . "$out" >/dev/null 2>&1 || echo '{}' >"$out"
  fi
  kill -0 "$ADAPTER_PID" 2>/dev/null || die "okta-adapter died during $name: $(tail -5 "$TMP/adapter.log")"
  # Sanity: every event answered 204 is in the de-duplication set now (nothing was de-duplicated or
  # lost), and both the firehose and the lifecycle route stream hold entries.
  local stored dedup fh route
  stored=$(jq -r '.events_stored_total // 0' "$out")
  dedup=$(rcli zcard "$PREFIX:{events}:dedup")
  fh=$(rcli xlen "$PREFIX:{events}:firehose")
  route=$(rcli xlen "$PREFIX:{events}:route:lifecycle")
  if [ "$dedup" -ne "$stored" ] || [ "$fh" -eq 0 ] || [ "$route" -eq 0 ]; then
    log "run $name: sanity check failed: $stored events acknowledged but $dedup uuids in the de-duplication set; firehose $fh, route $route entries"
    FAILED=1
  fi
  # Which consumer groups read the firehose (in-process consumers compete with ingest).
  local groups
  groups=$(rcli xinfo groups "$PREFIX:{events}:firehose" | awk 'prev == "name" {print} {prev = $0}' | paste -sd' ' -)
  jq --arg g "$groups" --arg m "$ADAPTER_MODE" '. + {firehose_groups: $g, adapter_mode: $m}' "$out" >"$out.tmp"
  mv "$out.tmp" "$out"
  if [ "$ADAPTER_MODE" = ingest ] && [ -n "$groups" ] && [ -z "$INGEST_GROUPS" ]; then
    INGEST_GROUPS=$groups
    log "note: firehose consumer groups even in the ingest-only configuration: $groups"
  fi
  RUNS+=("$name")
  jq -c '{events_per_sec, p50_ms, p99_ms, errors, cpu_cores, firehose_groups}' "$out" >&2
}

val() { jq -r "$2 // empty" "$TMP/$1.json"; } # run field

# ---------------------------------------------------------------------------------------------
start_adapter ingest

# 3. redis-benchmark references, same redis-server, same machine, same time.
XVALUE=$(head -c "$XADD_VALUE_BYTES" /dev/zero | tr '\0' 'x')
# Two forms: plain `XADD benchstream * event <value>` is the issue's reference (it quotes ~290k/s
# at -P 50 for this machine kind); its stream grows to 1.5 GB during the run, so its rate depends
# on how fast the kernel hands Redis new memory: 266k-283k/s in most runs here, 468k-474k/s in
# others. `MAXLEN ~ 100000` trims like the adapter's streams and measured 447k-468k/s every time.
# The targets are judged against the plain form, as the issue defines them; the table shows the
# ratio to both.
redis_bench() { # name pipeline requests plain|trimmed
  rcli flushall >/dev/null
  wait_quiet
  local trim=()
  [ "$4" = trimmed ] && trim=(MAXLEN '~' 100000)
  log "redis-benchmark XADD ${XADD_VALUE_BYTES} B ($4), -c 50 -P $2 -n $3"
  local m0 r0 t0 m1 r1 t1 own
  m0=$(machine_busy); r0=$(pid_ticks "$REDIS_PID"); t0=$(date +%s%N)
  # Through `bash -c` so the benchmark's own CPU time can be read afterwards (cutime + cstime
  # of that shell once it has reaped redis-benchmark).
  run_bounded 180 bash -c 'redis-benchmark "$@" >"$0.csv" || exit
    read -r -a f <"/proc/$$/stat"; echo $((f[15] + f[16])) >"$0.ticks"' "$TMP/$1" \
    -h 127.0.0.1 -p "$RPORT" --csv -c 50 -P "$2" -n "$3" \
    XADD benchstream "${trim[@]}" '*' event "$XVALUE" ||
    die "redis-benchmark failed: $(cat "$TMP/$1.csv")"
  m1=$(machine_busy); r1=$(pid_ticks "$REDIS_PID"); t1=$(date +%s%N)
  own=$(cat "$TMP/$1.ticks")
  rcli del benchstream >/dev/null
  # "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
  awk -F'","' -v secs="$(((t1 - t0) / 1000000))" -v redis=$((r1 - r0)) -v own="$own" -v machine=$((m1 - m0)) '
    NR == 2 {
      s = secs / 1000; other = (machine - redis - own) / 100 / s; if (other < 0) other = 0
      printf "{\"rps\": %s, \"p50_ms\": %s, \"p99_ms\": %s, \"cpu_cores\": {\"redis\": %.3f, \"loadgen\": %.3f, \"other\": %.3f}}\n",
        $2, $5, $7, redis / 100 / s, own / 100 / s, other
    }' "$TMP/$1.csv" >"$TMP/$1.json"
  jq -e '.rps > 0' "$TMP/$1.json" >/dev/null || die "could not parse redis-benchmark output: $(cat "$TMP/$1.csv")"
  jq -c . "$TMP/$1.json" >&2
}
redis_bench xadd-p50 50 1000000 plain
redis_bench xadd-p1 1 300000 plain
redis_bench xadd-p50-trimmed 50 1000000 trimmed
redis_bench xadd-p1-trimmed 1 300000 trimmed
XADD_P50=$(val xadd-p50 .rps)
XADD_P1=$(val xadd-p1 .rps)
XADD_P50_TRIMMED=$(val xadd-p50-trimmed .rps)
XADD_P1_TRIMMED=$(val xadd-p1-trimmed .rps)

# 4. Closed loop: best of a few concurrencies per batch size.
best_of() { # batch "concurrencies" variable: sets variable to the best run's name
  local batch=$1 best="" best_eps=-1 c name eps
  for c in $2; do
    name="closed-b$batch-c$c"
    run_load "$name" "$batch" "$c"
    eps=$(val "$name" .events_per_sec)
    if [ -n "$eps" ] && [ "$(val "$name" .errors)" = 0 ] &&
      awk -v a="$eps" -v b="$best_eps" 'BEGIN {exit !(a > b)}'; then
      best=$name best_eps=$eps
    fi
  done
  [ -n "$best" ] || die "no successful closed-loop run for batch $batch"
  printf -v "$3" '%s' "$best"
}
best_of 1 "$B1_CONC" BEST1
best_of 50 "$B50_CONC" BEST50
best_of 200 "$B200_CONC" BEST200

# 5. Open loop at half the best delivery rate.
half_rate() { awk -v r="$(val "$1" .deliveries_per_sec)" 'BEGIN {printf "%.1f", r / 2}'; }
RATE1=$(half_rate "$BEST1")
RATE50=$(half_rate "$BEST50")
run_load open-b1 1 64 "$RATE1"
run_load open-b50 50 16 "$RATE50"

ADAPTER_RSS=$(peak_rss_mib "$ADAPTER_PID")
REDIS_PEAK=$(rcli info memory | awk -F: '/^used_memory_peak_human/ {print $2}' | tr -d '\r')

# 6. The same half-load runs with the shipped defaults (in-process firehose consumers on).
if [ "$SKIP_DEFAULTS" != 1 ]; then
  stop_pid "$ADAPTER_PID"
  ADAPTER_PID=""
  rcli flushall >/dev/null
  start_adapter defaults
  run_load defaults-open-b1 1 64 "$RATE1"
  run_load defaults-open-b50 50 16 "$RATE50"
  DEFAULTS_RSS=$(peak_rss_mib "$ADAPTER_PID")
  DEFAULTS_GROUPS=$(val defaults-open-b50 .firehose_groups)
fi

# ---------------------------------------------------------------------------------------------
fmt_int() { # 12345.6 -> 12,346
  awk -v x="$1" 'BEGIN {s = sprintf("%.0f", x); t = "";
    while (length(s) > 3) {t = "," substr(s, length(s) - 2) t; s = substr(s, 1, length(s) - 3)}
    print s t}'
}
ms() { [ -n "$1" ] && printf "%.2f ms" "$1" || printf "—"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
mark() { awk -v a="$1" -v t="$2" -v op="$3" 'BEGIN {ok = (op == ">=") ? a >= t : a < t; printf "%s", ok ? "✅" : "❌"}'; }
conc_list() { echo "$1" | sed 's/ /\//g'; }

closed_row() { # run reference_rps reference_name target label trimmed_reference_rps
  local eps p50 p99 r
  eps=$(val "$1" .events_per_sec); p50=$(val "$1" .p50_ms); p99=$(val "$1" .p99_ms)
  r=$(ratio "$eps" "$2")
  printf "| %s | %s | %s | %s | %s of %s (target ≥ %s) %s; %s of the trimmed form |\n" \
    "$5" "$(fmt_int "$eps")" "$(ms "$p50")" "$(ms "$p99")" "$r" "$3" "$4" "$(mark "$r" "$4" ">=")" \
    "$(ratio "$eps" "$6")"
}
open_row() { # run label
  local eps p99
  eps=$(val "$1" .events_per_sec); p99=$(val "$1" .p99_ms)
  printf "| %s | %s | %s | %s %s | p99 target < 10 ms; %s late |\n" \
    "$2" "$(fmt_int "$eps")" "$(ms "$(val "$1" .p50_ms)")" "$(ms "$p99")" "$(mark "$p99" 10 "<")" \
    "$(val "$1" .late)"
}
cpu() { # run -> "adapter / redis / loadgen / other"
  jq -r '.cpu_cores // {} | "\(.adapter // "–") / \(.redis // "?") / \(.loadgen // "?") / \(.other // "?")"' "$TMP/$1.json"
}
# CPU time per event (or per XADD), in µs: adapter / redis.
us_per_event() { # run rate_field
  jq -r --arg f "$2" '(.[$f] // 0) as $r | if $r > 0 then
      [(.cpu_cores.adapter, .cpu_cores.redis) | if . == null then "–" else (. * 1e6 / $r | round | tostring) end]
      | join(" / ") else "?" end' "$TMP/$1.json"
}
# Runs during which other processes used more than a quarter of a core.
NOISY=$(for r in xadd-p50 xadd-p1 xadd-p50-trimmed xadd-p1-trimmed "${RUNS[@]}"; do
  jq -r --arg r "$r" 'select((.cpu_cores.other // 0) > 0.25) | "\($r) (\(.cpu_cores.other))"' "$TMP/$r.json"
done | paste -sd, - | sed 's/,/, /g')

C1=$(val "$BEST1" .concurrency); C50=$(val "$BEST50" .concurrency); C200=$(val "$BEST200" .concurrency)
EVENT_BYTES=$(val "$BEST1" .event_bytes)
MODEL=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
DIRTY=$(git status --porcelain --untracked-files=no 2>/dev/null | grep -q . && echo " (+ uncommitted changes)" || true)

{
  echo "# okta-adapter ingest benchmark"
  echo
  echo "\`bash bench/ingest.sh\` — $(date -u +'%Y-%m-%d %H:%M UTC'), commit $COMMIT$DIRTY"
  echo
  if [ -n "$INGEST_GROUPS" ]; then
    echo "Note: even the ingest-only configuration had in-process consumers on the firehose" \
      "(\`$INGEST_GROUPS\`; no setting turns them off), so those runs include their cost."
    echo
  fi
  if [ -n "$NOISY" ]; then
    echo "**⚠ Not representative: other processes competed for the CPUs (cores they used) during: $NOISY.**"
    echo
  fi
  echo "| scenario | events/s | p50 | p99 | ratio |"
  echo "|---|---:|---:|---:|---|"
  closed_row "$BEST1" "$XADD_P1" "XADD -P 1" 0.5 "batch 1, closed loop (best of C=$(conc_list "$B1_CONC"): C=$C1)" "$XADD_P1_TRIMMED"
  closed_row "$BEST50" "$XADD_P50" "XADD -P 50" 0.25 "batch 50, closed loop (best of C=$(conc_list "$B50_CONC"): C=$C50)" "$XADD_P50_TRIMMED"
  closed_row "$BEST200" "$XADD_P50" "XADD -P 50" 0.25 "batch 200, closed loop (best of C=$(conc_list "$B200_CONC"): C=$C200)" "$XADD_P50_TRIMMED"
  open_row open-b1 "batch 1, open loop at half max ($RATE1 deliveries/s)"
  open_row open-b50 "batch 50, open loop at half max ($RATE50 deliveries/s)"
  if [ "$SKIP_DEFAULTS" != 1 ]; then
    open_row defaults-open-b1 "batch 1, half max, **shipped defaults** (firehose consumers: $DEFAULTS_GROUPS)"
    open_row defaults-open-b50 "batch 50, half max, **shipped defaults** (firehose consumers: $DEFAULTS_GROUPS)"
  fi
  for r in xadd-p50:"-P 50:reference for batched runs" xadd-p1:"-P 1:reference for batch 1" \
    xadd-p50-trimmed:"-P 50, MAXLEN ~ 100000:trimmed like the adapter's streams" \
    xadd-p1-trimmed:"-P 1, MAXLEN ~ 100000:trimmed like the adapter's streams"; do
    IFS=: read -r name form what <<<"$r"
    printf "| redis-benchmark XADD %s B, -c 50 %s | %s | %s | %s | %s |\n" "$XADD_VALUE_BYTES" "$form" \
      "$(fmt_int "$(val "$name" .rps)")" "$(ms "$(val "$name" .p50_ms)")" "$(ms "$(val "$name" .p99_ms)")" "$what"
  done
  echo
  echo "Half-load latency (ingest only): batch 1 at $RATE1 deliveries/s → p50 $(ms "$(val open-b1 .p50_ms)")," \
    "p99 $(ms "$(val open-b1 .p99_ms)"), max $(ms "$(val open-b1 .max_ms)"); batch 50 at $RATE50 deliveries/s →" \
    "p50 $(ms "$(val open-b50 .p50_ms)"), p99 $(ms "$(val open-b50 .p99_ms)"), max $(ms "$(val open-b50 .max_ms)")" \
    "(target p99 < 10 ms)."
  echo
  echo "redis-benchmark (same redis-server, same run, before the adapter runs): \`XADD benchstream * event <${XADD_VALUE_BYTES} B>\`," \
    "50 clients — -P 50: $(fmt_int "$XADD_P50") req/s, Redis $(us_per_event xadd-p50 rps | cut -d/ -f2 | tr -d ' ') µs CPU per XADD;" \
    "-P 1: $(fmt_int "$XADD_P1") req/s. With \`MAXLEN ~ 100000\` (trimmed like the adapter's streams): -P 50" \
    "$(fmt_int "$XADD_P50_TRIMMED") req/s, Redis $(us_per_event xadd-p50-trimmed rps | cut -d/ -f2 | tr -d ' ') µs CPU per XADD; -P 1 $(fmt_int "$XADD_P1_TRIMMED") req/s." \
    "The targets are judged against the plain form, as the issue defines them (it quotes ~290k/s at -P 50);" \
    "its rate depends on how fast the kernel hands Redis the 1.5 GB it grows to, and has measured 266k–474k/s on this machine." \
    "The trimmed form is steadier and is the stricter reference: its ratios are in the last column."
  echo
  echo "Machine: $(nproc) CPUs, $MODEL; $(uname -sr); redis-server $REDIS_VERSION." \
    "Adapter peak RSS (VmHWM): $ADAPTER_RSS MiB ingest-only${DEFAULTS_RSS:+, $DEFAULTS_RSS MiB with the shipped defaults};" \
    "Redis used_memory_peak: $REDIS_PEAK."
  echo
  echo "### All runs"
  echo
  echo "| run | batch | C | rate/s | deliveries | events/s | p50 | p99 | max | errors | CPU cores: adapter / redis / loadgen / other | CPU µs per event: adapter / redis | firehose consumers |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---|"
  for r in xadd-p50 xadd-p1 xadd-p50-trimmed xadd-p1-trimmed; do
    printf "| redis-benchmark %s | – | 50 | | | %s | %s | %s | | | %s | %s | |\n" "$r" \
      "$(fmt_int "$(val "$r" .rps)")" "$(ms "$(val "$r" .p50_ms)")" "$(ms "$(val "$r" .p99_ms)")" \
      "$(cpu "$r")" "$(us_per_event "$r" rps)"
  done
  for r in "${RUNS[@]}"; do
    printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n" "$r" \
      "$(val "$r" .batch)" "$(val "$r" .concurrency)" "$(val "$r" .rate)" "$(val "$r" .deliveries)" \
      "$(fmt_int "$(val "$r" .events_per_sec)")" \
      "$(ms "$(val "$r" .p50_ms)")" "$(ms "$(val "$r" .p99_ms)")" "$(ms "$(val "$r" .max_ms)")" \
      "$(val "$r" .errors)" "$(cpu "$r")" "$(us_per_event "$r" events_per_sec)" "$(val "$r" .firehose_groups)"
  done
  echo
  echo "Setup: events are the LogEvent of hooks/events/user.lifecycle.suspend.json, compact," \
    "$EVENT_BYTES B each, unique uuid, 10 000 users; every event goes to the firehose, to the" \
    "\`lifecycle\` route stream and into the de-duplication set. Firehose MAXLEN ~ $FIREHOSE_MAXLEN" \
    "(default 1 000 000), route MAXLEN ~ 100 000; Redis without persistence, FLUSHALLed before every" \
    "run; ${WARMUP} s warm-up, ${DURATION} s timed per run. Ingest-only runs disable the in-process" \
    "firehose consumers (projection.enabled=false, report.enabled=false); \"shipped defaults\" runs" \
    "do not. The load generator, the adapter, Redis and redis-benchmark share this machine's CPUs" \
    "(\"other\" = everything else). Ratio = adapter events/s ÷ redis-benchmark XADD requests/s."
} >"$TMP/table.md"

mkdir -p "$(dirname "$OUT")"
cp "$TMP/table.md" "$OUT"
echo
cat "$TMP/table.md"
echo
log "written to $OUT"
if [ "$FAILED" != 0 ]; then
  log "FAILED: some deliveries were not answered 204 or a sanity check failed (see above)"
  exit 1
fi
