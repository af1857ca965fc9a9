#!/usr/bin/env bash
# Redis Cluster sizing benchmark: `bash bench/cluster.sh`
#
# Starts (on 127.0.0.1, cleaned up on exit) one redis-server and a 3-master Redis Cluster
# (redis-cli --cluster create … --cluster-replicas 0), and measures in the same run:
#
# Part 1, redis-benchmark (Redis alone):
#   1. spread keys (SET/GET over 1M random keys, like per-user projection keys `{u:<id>}`),
#      one Redis vs the cluster (`redis-benchmark --cluster`);
#   2. the ingest shape: XADD of a 1.5 KB entry with MAXLEN ~ 100000 to one `{events}` key —
#      on a cluster that is one slot on one master, whatever the number of masters.
# Part 2, the adapter (`okta-adapter serve`, release build; `redis.cluster=true` for the cluster,
#   seed node = the first master), one Redis and the cluster alternately (ROUNDS times):
#   3. batched event hook ingest: examples/ingest_load.rs, deliveries of INGEST_BATCH events,
#      closed loop at INGEST_CONC, the adapter with the ingest-only configuration of
#      bench/ingest.sh (`--roles hooks,api`, no consumers, firehose MAXLEN 100000);
#   4. projection apply: LOOKUP_USERS users (3 events each, examples/seed_firehose.rs written
#      straight into the firehose — on the cluster, on the master that owns the `{events}` slot),
#      one `serve` projecting them (time to lag 0), the user hashes then spread over the masters;
#   5. lookups: `GET /api/v1/users/{login}` with a support key (every read audited),
#      examples/lookup_load.rs at LOOKUP_CONC, random seeded logins.
# Knobs: N (requests per redis-benchmark run, 200000), P (pipeline depth, 16), C (clients, 50);
#        ADAPTER=0 (part 1 only), ROUNDS=1, DURATION=10, INGEST_BATCH=50, INGEST_CONC=8,
#        LOOKUP_USERS=100000, LOOKUP_CONC=64, SKIP_BUILD=1, OUT=bench/results/cluster-latest.md.
# The ratio, not the absolute number, is the result: every process shares this machine's cores,
# and three masters on one machine share them too (a real cluster gives each master its own).
set -euo pipefail
N="${N:-200000}"; P="${P:-16}"; C="${C:-50}"
ADAPTER=${ADAPTER:-1}
ROUNDS=${ROUNDS:-1}
DURATION=${DURATION:-10}
INGEST_BATCH=${INGEST_BATCH:-50}
INGEST_CONC=${INGEST_CONC:-8}
LOOKUP_USERS=${LOOKUP_USERS:-100000}
LOOKUP_CONC=${LOOKUP_CONC:-64}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
OUT=${OUT:-$ROOT/bench/results/cluster-latest.md}
mkdir -p "$(dirname "$OUT")"
dir="$(mktemp -d)"; pids=(); apids=()
cleanup() {
  for p in "${apids[@]}" "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${apids[@]}" "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
log() { printf '[cluster.sh %s] %s\n' "$(date +%T)" "$*" >&2; }
# The environment must not change what is measured.
for v in $(compgen -e); do
  case $v in OKTA_ADAPTER* | RUST_LOG) unset "$v" ;; esac
done
if [[ $ADAPTER == 1 && ${SKIP_BUILD:-0} != 1 ]]; then
  cargo build --release --quiet --bin okta-adapter --example ingest_load --example lookup_load --example seed_firehose
fi
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
declare -A pid_of
start() { redis-server --port "$1" --bind 127.0.0.1 --save "" --appendonly no --dir "$dir" \
  --loglevel warning "${@:2}" >/dev/null & pids+=($!); pid_of[$1]=$!; }
single=$(port); start "$single"
nodes=()
for _ in 1 2 3; do
  while :; do p=$(port); [ "$p" -lt 55535 ] && break; done
  start "$p" --cluster-enabled yes --cluster-config-file "$dir/nodes-$p.conf"; nodes+=("$p")
done
sleep 1
redis-cli --cluster create "${nodes[@]/#/127.0.0.1:}" --cluster-replicas 0 --cluster-yes >/dev/null
until redis-cli -p "${nodes[0]}" cluster info | grep -q cluster_state:ok; do sleep 0.2; done
value="$(head -c 1500 /dev/zero | tr '\0' x)"
bench() { redis-benchmark -q -n "$N" -P "$P" -c "$C" "$@" | tr '\r' '\n' | grep -E 'requests per second' | tail -1 | sed -E 's/.* ([0-9.]+) requests per second.*/\1/'; }
log "part 1: redis-benchmark"
s_set=$(bench -p "$single" -r 1000000 -t set); c_set=$(bench -p "${nodes[0]}" --cluster -r 1000000 -t set)
s_get=$(bench -p "$single" -r 1000000 -t get); c_get=$(bench -p "${nodes[0]}" --cluster -r 1000000 -t get)
s_x=$(bench -p "$single" XADD 'b:{events}:firehose' MAXLEN '~' 100000 '*' event "$value")
# redis-benchmark --cluster cannot route a custom command; the stream's slot lives on one master,
# so the cluster figure is that master's.
owner=""
for p in "${nodes[@]}"; do
  redis-cli -p "$p" xadd 'b:{events}:firehose' '*' probe 1 | grep -q MOVED || { owner=$p; break; }
done
c_x=$(bench -p "$owner" XADD 'b:{events}:firehose' MAXLEN '~' 100000 '*' event "$value")
ratio() { python3 -c "print(f'{float($2)/float($1):.2f}x')"; }
{
  printf '| workload (redis-benchmark) | one Redis (ops/s) | 3-master cluster (ops/s) | cluster / one |\n|---|---|---|---|\n'
  printf '| SET, 1M random keys (per-user shape) | %s | %s | %s |\n' "$s_set" "$c_set" "$(ratio "$s_set" "$c_set")"
  printf '| GET, 1M random keys (lookup shape) | %s | %s | %s |\n' "$s_get" "$c_get" "$(ratio "$s_get" "$c_get")"
  printf '| XADD 1.5 KB to one {events} stream (ingest shape) | %s | %s | %s |\n' "$s_x" "$c_x" "$(ratio "$s_x" "$c_x")"
  echo "(N=$N P=$P C=$C, $(nproc) cores shared by every process)"
} >"$dir/part1.md"
cat "$dir/part1.md"
if [[ $ADAPTER != 1 ]]; then
  cp "$dir/part1.md" "$OUT"
  exit 0
fi

# ---------------------------------------------------------------------------------------------
# Part 2: the adapter on one Redis vs the cluster.
BIN=$ROOT/target/release/okta-adapter
EX=$ROOT/target/release/examples
PREFIX=bench
SECRET=bench-secret
TCK=$(getconf CLK_TCK)
now() { date +%s.%N; }
calc() { awk "BEGIN { printf \"%s\", $* }"; }
ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
busy() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat; }
# Ports of the Redis processes of a target, and the one that holds the `{events}` slot.
redis_ports() { if [[ $1 == single ]]; then echo "$single"; else echo "${nodes[@]}"; fi; }
events_port() { if [[ $1 == single ]]; then echo "$single"; else echo "$owner"; fi; }
flush() { for p in $(redis_ports "$1"); do redis-cli -p "$p" FLUSHALL >/dev/null; done; }
cpu_args() { for p in $(redis_ports "$1"); do printf -- '--cpu-pid redis-%s=%s ' "$p" "${pid_of[$p]}"; done; }
adapter_env() { # target, then the command
  local target=$1; shift
  local cl=()
  if [[ $target == cluster ]]; then
    cl=(OKTA_ADAPTER__REDIS__CLUSTER=true
      OKTA_ADAPTER__REDIS__CLUSTER_NODES="[\"redis://127.0.0.1:${nodes[1]}\", \"redis://127.0.0.1:${nodes[2]}\"]")
  fi
  exec env OKTA_ADAPTER__REDIS__URL="redis://127.0.0.1:$(redis_ports "$target" | awk '{ print $1 }')" "${cl[@]}" \
    OKTA_ADAPTER__REDIS__PREFIX="$PREFIX" OKTA_ADAPTER__HOOKS__SECRETS="[\"$SECRET\"]" \
    OKTA_ADAPTER__LOG__LEVEL=warn "$@"
}
APID=""; APORT=""
start_adapter() { # target log roles [env...]
  local target=$1 logf=$2 roles=$3; shift 3
  APORT=$(port)
  adapter_env "$target" OKTA_ADAPTER__HTTP__LISTEN="127.0.0.1:$APORT" "$@" "$BIN" serve --roles "$roles" >"$logf" 2>&1 &
  APID=$!; apids+=("$APID")
  for _ in $(seq 200); do
    curl -fsS -o /dev/null "http://127.0.0.1:$APORT/readyz" 2>/dev/null && return 0
    kill -0 "$APID" 2>/dev/null || { log "okta-adapter exited: $(tail -5 "$logf")"; exit 1; }
    sleep 0.1
  done
  log "okta-adapter not ready: $(tail -5 "$logf")"; exit 1
}
stop_adapter() { kill "$APID" 2>/dev/null || true; wait "$APID" 2>/dev/null || true; apids=(); APID=""; }
# Sum of the redis-* entries of a load generator's cpu_cores.
redis_cpu() { jq -r '[.cpu_cores | to_entries[] | select(.key | startswith("redis")) | .value] | add | . * 100 | round / 100' "$1"; }
other_cpu() { jq -r '(.cpu_cores.machine - ([.cpu_cores | to_entries[] | select(.key != "machine" and .key != "other") | .value] | add)) | . * 100 | round / 100' "$1"; }

ingest() { # target round
  local target=$1 round=$2 out="$dir/ingest-$1-$2.json"
  flush "$target"
  start_adapter "$target" "$dir/adapter-ingest-$target-$round.log" hooks,api \
    OKTA_ADAPTER__PROJECTION__ENABLED=false OKTA_ADAPTER__REPORT__ENABLED=false OKTA_ADAPTER__FIREHOSE__MAXLEN=100000
  log "ingest on $target (round $round): batch $INGEST_BATCH, concurrency $INGEST_CONC, ${DURATION}s"
  # shellcheck disable=SC2046 # cpu_args is a list of arguments
  "$EX/ingest_load" --url "http://127.0.0.1:$APORT" --secret "$SECRET" --batch "$INGEST_BATCH" \
    --concurrency "$INGEST_CONC" --duration "$DURATION" --warmup 1 --prebuild-mb 512 \
    --cpu-pid "adapter=$APID" $(cpu_args "$target") >"$out" 2>"$dir/ingest.err" ||
    { log "ingest_load failed: $(cat "$dir/ingest.err")"; exit 1; }
  local stored fh
  stored=$(jq -r .events_stored_total "$out")
  fh=$(redis-cli -p "$(events_port "$target")" XLEN "$PREFIX:{events}:firehose")
  [[ $fh -gt 0 ]] || { log "ingest on $target: empty firehose"; exit 1; }
  stop_adapter
  log "ingest $target: $(jq -c '{events_per_sec, p50_ms, p99_ms, errors, cpu_cores}' "$out"); $stored events acknowledged"
}

lookup() { # target round
  local target=$1 round=$2 out="$dir/lookup-$1-$2.json" ep t0 t st m0 a_cpu r0 r_cpu
  flush "$target"
  ep=$(events_port "$target")
  log "lookup on $target (round $round): seeding $LOOKUP_USERS users into the firehose on port $ep"
  "$EX/seed_firehose" --url "redis://127.0.0.1:$ep" --prefix "$PREFIX" --users "$LOOKUP_USERS" >/dev/null
  local events=$((LOOKUP_USERS * 3))
  r0=0
  for p in $(redis_ports "$target"); do r0=$((r0 + $(ticks "${pid_of[$p]}"))); done
  m0=$(busy)
  t0=$(now)
  start_adapter "$target" "$dir/adapter-lookup-$target-$round.log" hooks,api,consumers
  while :; do
    st=$(redis-cli -p "$ep" XINFO GROUPS "$PREFIX:{events}:firehose" | tr -d '\r' | awk '
      NR % 2 == 1 { k = $0; next }
      k == "name" { n = $0 } k == "pending" { p = $0 } k == "entries-read" { e = ($0 == "" ? 0 : $0) }
      k == "lag" && n == "projections" { print p, e, ($0 == "" ? -1 : $0) }')
    t=$(calc "$(now) - $t0")
    read -r pend read_ lag <<<"${st:-x 0 -1}"
    [[ $pend == 0 && $lag == 0 && $read_ -ge $events ]] && break
    awk "BEGIN { exit !($t > 900) }" && { log "projection on $target did not finish: $st"; exit 1; }
    sleep 0.2
  done
  a_cpu=$(calc "$(ticks "$APID") / $TCK / $t")
  r_cpu=0
  for p in $(redis_ports "$target"); do r_cpu=$((r_cpu + $(ticks "${pid_of[$p]}"))); done
  r_cpu=$(calc "($r_cpu - $r0) / $TCK / $t")
  echo "{\"seconds\": $t, \"events_per_sec\": $(calc "$events / $t"), \"adapter\": $a_cpu, \"redis\": $r_cpu, \"other\": $(calc "($(busy) - $m0) / $TCK / $t - $a_cpu - $r_cpu")}" >"$dir/project-$target-$round.json"
  log "projection $target: $events events in $(printf '%.1f' "$t") s"
  local token code
  token=$(adapter_env "$target" "$BIN" keys create --role support 2>/dev/null)
  code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token" "http://127.0.0.1:$APORT/api/v1/users/user0@example.com")
  [[ $code == 200 ]] || { log "sanity lookup of user0@example.com on $target answered $code"; exit 1; }
  log "lookups on $target: concurrency $LOOKUP_CONC, ${DURATION}s"
  # shellcheck disable=SC2046 # cpu_args is a list of arguments
  LOOKUP_TOKEN=$token "$EX/lookup_load" --url "http://127.0.0.1:$APORT" --users "$LOOKUP_USERS" \
    --concurrency "$LOOKUP_CONC" --duration "$DURATION" --warmup 2 \
    --cpu-pid "adapter=$APID" $(cpu_args "$target") >"$out" 2>"$dir/lookup.err" ||
    { log "lookup_load failed: $(cat "$dir/lookup.err")"; exit 1; }
  [[ $(jq -r '.hits_non_200 + .transport_errors + .wrong_body' "$out") == 0 ]] ||
    { log "lookup on $target had errors: $(cat "$out")"; exit 1; }
  stop_adapter
  log "lookup $target: $(jq -c '{requests_per_sec, p50_ms, p99_ms, cpu_cores}' "$out")"
}

for round in $(seq "$ROUNDS"); do
  for target in single cluster; do ingest "$target" "$round"; done
  for target in single cluster; do lookup "$target" "$round"; done
done

median() { sort -g | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
med() { for r in $(seq "$ROUNDS"); do jq -r "$3" "$dir/$1-$2-$r.json"; done | median; }
fmt() { if [[ -n $2 ]]; then printf "%'.0f" "$1"; else printf '%.2f' "$1"; fi; }
row() { # label kind field unit
  local s c
  s=$(med "$2" single "$3"); c=$(med "$2" cluster "$3")
  printf '| %s | %s%s | %s%s | **%s** |\n' "$1" "$(fmt "$s" "$4")" "${4:+ $4}" "$(fmt "$c" "$4")" "${4:+ $4}" "$(ratio "$s" "$c")"
}
cpu() { # kind target
  local r=$ROUNDS
  printf 'adapter %s, redis %s, other %s' "$(jq -r '.cpu_cores.adapter' "$dir/$1-$2-$r.json")" \
    "$(redis_cpu "$dir/$1-$2-$r.json")" "$(other_cpu "$dir/$1-$2-$r.json")"
}
{
  echo "# Cluster benchmark — $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo
  echo "Machine: $(nproc) cores, $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo); redis-server $(redis-server --version | awk '{print $3}'); commit $(git rev-parse --short HEAD); load average at the start $LOAD_START, at the end $(cut -d' ' -f1-3 /proc/loadavg)."
  echo "Command: \`N=$N P=$P C=$C ROUNDS=$ROUNDS DURATION=$DURATION INGEST_BATCH=$INGEST_BATCH INGEST_CONC=$INGEST_CONC LOOKUP_USERS=$LOOKUP_USERS LOOKUP_CONC=$LOOKUP_CONC bash bench/cluster.sh\`; one Redis and a 3-master cluster (no replicas) on the same $(nproc) cores, measured alternately."
  echo
  cat "$dir/part1.md"
  echo
  echo "| workload through \`okta-adapter serve\` (median of $ROUNDS) | one Redis | 3-master cluster | cluster / one |"
  echo "|---|---|---|---|"
  row "event hook ingest, batch $INGEST_BATCH, closed loop c=$INGEST_CONC" ingest .events_per_sec "events/s"
  row "… its p99 (ms)" ingest .p99_ms ""
  row "projection apply, $((LOOKUP_USERS * 3)) events, one process" project .events_per_sec "events/s"
  row "lookup \`GET /api/v1/users/{login}\`, support key, c=$LOOKUP_CONC" lookup .requests_per_sec "req/s"
  row "… its p99 (ms)" lookup .p99_ms ""
  echo
  echo "CPU in cores (last round): ingest — one Redis: $(cpu ingest single); cluster: $(cpu ingest cluster). Lookup — one Redis: $(cpu lookup single); cluster: $(cpu lookup cluster) (redis = the sum over the masters)."
  echo
  echo "<details><summary>Raw results</summary>"
  echo
  echo '```'
  for f in "$dir"/ingest-*.json "$dir"/project-*.json "$dir"/lookup-*.json; do echo "$(basename "$f"): $(jq -c . "$f")"; done
  echo '```'
  echo
  echo "</details>"
} >"$OUT"
cat "$OUT"
