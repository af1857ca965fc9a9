#!/usr/bin/env bash
# Consumer scale-out benchmark (issue 17, "Must show"): how projection throughput grows from one
# to three consumer-only processes (`okta-adapter serve --roles consumers`) on one Redis.
#
#   bash bench/consumers.sh                   # 100,000 users = 300,000 events, 1 then 3 processes
#   USERS=300000 ROUNDS=2 bash bench/consumers.sh
#
# Each run: FLUSHALL → pre-fill the firehose directly (examples/seed_firehose.rs: create, activate
# and group-add per user, 200 tenants, no MAXLEN) → start P processes with `--roles consumers`
# (each its own consumer name in the `projections`, `reports` and clean-up groups) → time from
# their start until the `projections` group has read every entry with lag 0 and pending 0 →
# events/s; the time until every firehose group (also `reports`) is done is reported beside it.
# Runs alternate 1, 3, 1, 3 … (ROUNDS times) so a change in the machine's load hits both sides;
# the result is the ratio 3 / 1 of the medians, with the CPU each side used.
# Markdown on stdout and in bench/results/consumers-latest.md.
#
# Knobs: USERS=100000 TENANTS=200 PROCS="1 3" ROUNDS=1 BATCH=100 (projection.batch)
#        TIMEOUT=900 (s per run) SKIP_BUILD=1 OUT=…
#        RENICE=1: put the consumer threads back to nice 0 once the processes are up (needs root
#        or CAP_SYS_NICE). The adapter runs its consumers on a thread at nice 10 (src/consumers.rs)
#        so they yield to hook requests in the same process; on a machine where other nice-0
#        processes keep the cores busy, that thread gets only a small share of a core, whatever
#        the number of consumer processes. RENICE=1 shows what the cores allow without that.
set -euo pipefail
USERS=${USERS:-100000}
TENANTS=${TENANTS:-200}
PROCS=${PROCS:-"1 3"}
ROUNDS=${ROUNDS:-1}
BATCH=${BATCH:-100}
TIMEOUT=${TIMEOUT:-900}
RENICE=${RENICE:-0}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BIN="$TARGET/release/okta-adapter"
EX="$TARGET/release/examples"
OUT=${OUT:-$ROOT/bench/results/consumers-latest.md}
mkdir -p "$(dirname "$OUT")"
EVENTS=$((USERS * 3))
PREFIX=bench
FIREHOSE="$PREFIX:{events}:firehose"
TCK=$(getconf CLK_TCK)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/okta-consumers-bench.XXXXXX")
PIDS=()
RUN_PIDS=()
cleanup() {
  local rc=$?
  for pid in "${RUN_PIDS[@]}" "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${RUN_PIDS[@]}" "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [[ $rc -ne 0 ]]; then
    for f in "$WORK"/adapter-*.log; do
      [[ -s $f ]] && { echo "--- last lines of $f" >&2; tail -n 20 "$f" >&2; }
    done
  fi
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT INT TERM
log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }
now() { date +%s.%N; }
calc() { awk "BEGIN { printf \"%s\", $* }"; }
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
busy() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat; }

for tool in redis-server redis-cli python3 curl; do
  command -v "$tool" >/dev/null || { log "\`$tool\` is required"; exit 1; }
done
# The environment must not change what is measured.
for v in $(compgen -e); do
  case $v in OKTA_ADAPTER* | RUST_LOG) unset "$v" ;; esac
done

[[ ${SKIP_BUILD:-0} == 1 ]] || cargo build --release --quiet --bin okta-adapter --example seed_firehose

RPORT=$(free_port)
redis-server --port "$RPORT" --bind 127.0.0.1 --save "" --appendonly no --daemonize no \
  --dir "$WORK" --loglevel warning >"$WORK/redis.log" 2>&1 &
RPID=$!
PIDS+=("$RPID")
rc() { redis-cli -h 127.0.0.1 -p "$RPORT" "$@"; }
for _ in $(seq 100); do rc PING >/dev/null 2>&1 && break; sleep 0.1; done
rc PING >/dev/null
REDIS_URL="redis://127.0.0.1:$RPORT"

# "name pending entries-read lag" for every group of the firehose, one line each.
groups_state() {
  rc XINFO GROUPS "$FIREHOSE" 2>/dev/null | tr -d '\r' | awk '
    NR % 2 == 1 { k = $0; next }
    k == "name" { n = $0 } k == "pending" { p = $0 } k == "entries-read" { e = ($0 == "" ? 0 : $0) }
    k == "lag" { print n, p, e, ($0 == "" ? -1 : $0) }'
}

# Waits until every consumer process has its consumer thread (nice > 0), then sets it to nice 0.
renice_consumers() {
  local pid task n done_=0
  for _ in $(seq 100); do
    for pid in "${RUN_PIDS[@]}"; do
      for task in /proc/"$pid"/task/*; do
        n=$(awk '{ sub(/^.*\) /, ""); print $17 }' "$task/stat" 2>/dev/null || echo 0)
        if [[ ${n:-0} -gt 0 ]]; then
          renice -n 0 -p "${task##*/}" >/dev/null || { log "renice failed (RENICE=1 needs root or CAP_SYS_NICE)"; exit 1; }
          done_=$((done_ + 1))
        fi
      done
    done
    [[ $done_ -ge ${#RUN_PIDS[@]} ]] && return 0
    sleep 0.05
  done
  log "RENICE=1: found only $done_ consumer threads at nice > 0 in ${#RUN_PIDS[@]} processes"
  exit 1
}

# run P: sets PROJ_T (s until the projections group is done), ALL_T (every group), A_CPU, R_CPU,
# O_CPU (cores, until PROJ_T), CONSUMERS (members of the projections group), DEAD. Runs in this
# shell, so the cleanup trap knows the consumer processes.
run() {
  local procs=$1 i port t0 t st pid proj_t="" all_t="" r0 m0
  rc FLUSHALL >/dev/null
  log "run with $procs process(es): seeding $USERS users ($EVENTS events)"
  "$EX/seed_firehose" --url "$REDIS_URL" --prefix "$PREFIX" --users "$USERS" --tenants "$TENANTS" >"$WORK/seed.json"
  [[ $(rc XLEN "$FIREHOSE") -eq $EVENTS ]] || { log "firehose has $(rc XLEN "$FIREHOSE") entries, expected $EVENTS"; exit 1; }
  rc CONFIG RESETSTAT >/dev/null
  RUN_PIDS=()
  r0=$(ticks "$RPID")
  m0=$(busy)
  t0=$(now)
  for i in $(seq "$procs"); do
    port=$(free_port)
    env OKTA_ADAPTER__REDIS__URL="$REDIS_URL" OKTA_ADAPTER__REDIS__PREFIX="$PREFIX" \
      OKTA_ADAPTER__HTTP__LISTEN="127.0.0.1:$port" OKTA_ADAPTER__HOOKS__SECRETS='["bench"]' \
      OKTA_ADAPTER__LOG__LEVEL=warn OKTA_ADAPTER__PROJECTION__BATCH="$BATCH" \
      OKTA_ADAPTER__PROJECTION__CONSUMER="bench-$procs-$i" OKTA_ADAPTER__REPORT__CONSUMER="bench-$procs-$i" \
      "$BIN" serve --roles consumers >"$WORK/adapter-$procs-$i.log" 2>&1 &
    RUN_PIDS+=("$!")
  done
  if [[ $RENICE == 1 ]]; then renice_consumers; fi
  while :; do
    t=$(calc "$(now) - $t0")
    st=$(groups_state)
    for pid in "${RUN_PIDS[@]}"; do
      kill -0 "$pid" 2>/dev/null || { log "a consumer process exited"; exit 1; }
    done
    if [[ -z $proj_t ]] && awk -v n="$EVENTS" '$1 == "projections" && $2 == 0 && $3 >= n && $4 == 0 { f = 1 } END { exit !f }' <<<"$st"; then
      proj_t=$t
      # CPU up to the moment the projection finished: that is what the rate is about.
      A_CPU=0
      for pid in "${RUN_PIDS[@]}"; do A_CPU=$(calc "$A_CPU + $(ticks "$pid")"); done
      A_CPU=$(calc "$A_CPU / $TCK / $t")
      R_CPU=$(calc "($(ticks "$RPID") - $r0) / $TCK / $t")
      O_CPU=$(calc "($(busy) - $m0) / $TCK / $t - $A_CPU - $R_CPU")
    fi
    if [[ -n $st ]] && awk -v n="$EVENTS" '$2 != 0 || $3 < n || $4 != 0 { f = 1 } END { exit f }' <<<"$st"; then
      all_t=$t
      break
    fi
    awk "BEGIN { exit !($t > $TIMEOUT) }" && break
    sleep 0.2
  done
  [[ -n $proj_t ]] || { log "the projection did not finish within ${TIMEOUT}s: $(groups_state | tr '\n' ';')"; exit 1; }
  GROUPS_SEEN=$(groups_state | awk '{ print $1 }' | paste -sd' ' -)
  DEAD=$(rc XLEN "$PREFIX:dead-letter")
  CONSUMERS=$(rc XINFO CONSUMERS "$FIREHOSE" projections | tr -d '\r' | awk 'prev == "name" { c++ } { prev = $0 } END { print c + 0 }')
  for pid in "${RUN_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${RUN_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  RUN_PIDS=()
  PROJ_T=$proj_t
  ALL_T=${all_t:-n/a}
}

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
declare -A RATES
ROWS=""
for round in $(seq "$ROUNDS"); do
  for p in $PROCS; do
    run "$p"
    secs=$PROJ_T all=$ALL_T a_cpu=$A_CPU r_cpu=$R_CPU o_cpu=$O_CPU consumers=$CONSUMERS dead=$DEAD
    rate=$(calc "$EVENTS / $secs")
    RATES[$p]+="$rate "
    log "$p process(es), round $round: $(printf '%.0f' "$rate") events/s ($(printf '%.1f' "$secs") s; all groups ${all} s); adapters $a_cpu, redis $r_cpu, other $o_cpu cores; $consumers consumers in the group; dead-lettered $dead"
    ROWS+="| $round | $p | $(printf '%.1f' "$secs") s | **$(printf '%.0f' "$rate")** | $([[ $all == n/a ]] && echo n/a || printf '%.1f s' "$all") | $(printf '%.2f' "$a_cpu") | $(printf '%.2f' "$r_cpu") | $(printf '%.2f' "$o_cpu") | $consumers | $dead | $(cut -d' ' -f1 /proc/loadavg) |"$'\n'
  done
done
median() { tr ' ' '\n' <<<"$1" | awk 'NF' | sort -g | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
FIRST=$(awk '{ print $1 }' <<<"$PROCS")
SUMMARY=""
for p in $PROCS; do
  m=$(median "${RATES[$p]}")
  SUMMARY+="| $p | $(printf '%.0f' "$m") events/s | $(calc "$m / $(median "${RATES[$FIRST]}")" | xargs printf '%.2f') |"$'\n'
done
{
  echo "# Consumer scale-out benchmark — $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo
  echo "Machine: $(nproc) cores, $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo); redis-server $(redis-server --version | awk '{print $3}'); commit $(git rev-parse --short HEAD); load average at the start $LOAD_BEFORE, at the end $(cut -d' ' -f1-3 /proc/loadavg)."
  echo "Command: \`USERS=$USERS PROCS=\"$PROCS\" ROUNDS=$ROUNDS BATCH=$BATCH RENICE=$RENICE bash bench/consumers.sh\`; $EVENTS events pre-filled per run, \`serve --roles consumers\` processes, firehose groups: $GROUPS_SEEN."
  echo "All processes (Redis, the consumers, anything else running) share the $(nproc) cores: more consumer processes than free cores cannot add CPU, only overlap each other's Redis round trips."
  echo
  echo "| processes | projection throughput (median) | × 1 process |"
  echo "|---|---|---|"
  printf '%s' "$SUMMARY"
  echo
  echo "| round | processes | projections lag 0 after | events/s | all groups lag 0 after | adapters CPU (cores) | redis CPU | other processes | consumers in group | dead-lettered | load avg (1 min) at end |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|"
  printf '%s' "$ROWS"
} >"$OUT"
cat "$OUT"
