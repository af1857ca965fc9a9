#!/usr/bin/env bash
# Redis Cluster sizing benchmark: `bash bench/cluster.sh`
#
# Starts (on 127.0.0.1, cleaned up on exit) one redis-server and a 3-master Redis Cluster
# (redis-cli --cluster create … --cluster-replicas 0), and measures with redis-benchmark:
#   1. spread keys (SET/GET over 1M random keys, like per-user projection keys `{u:<id>}`),
#      one Redis vs the cluster (`redis-benchmark --cluster`);
#   2. the ingest shape: XADD of a 1.5 KB entry with MAXLEN ~ 100000 to one `{events}` key —
#      on a cluster that is one slot on one master, whatever the number of masters.
# Knobs: N (requests per run, 200000), P (pipeline depth, 16), C (clients, 50).
# The ratio, not the absolute number, is the result: every process shares this machine's cores.
set -euo pipefail
N="${N:-200000}"; P="${P:-16}"; C="${C:-50}"
dir="$(mktemp -d)"; pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$dir"; }
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
start() { redis-server --port "$1" --bind 127.0.0.1 --save "" --appendonly no --dir "$dir" \
  --loglevel warning "${@:2}" >/dev/null & pids+=($!); }
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
printf '| workload | one Redis (ops/s) | 3-master cluster (ops/s) | cluster / one |\n|---|---|---|---|\n'
printf '| SET, 1M random keys (per-user shape) | %s | %s | %s |\n' "$s_set" "$c_set" "$(ratio "$s_set" "$c_set")"
printf '| GET, 1M random keys (lookup shape) | %s | %s | %s |\n' "$s_get" "$c_get" "$(ratio "$s_get" "$c_get")"
printf '| XADD 1.5 KB to one {events} stream (ingest shape) | %s | %s | %s |\n' "$s_x" "$c_x" "$(ratio "$s_x" "$c_x")"
echo "(N=$N P=$P C=$C, $(nproc) cores shared by every process)"
