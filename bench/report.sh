#!/usr/bin/env bash
# Report benchmark: a synthetic month (default 1,000,000 users, 30,000,000 events, 200 tenants)
# fed straight into the aggregation, then the report compiled. Prints one JSON line.
#
#   bash bench/report.sh                         # the full month
#   EVENTS=3000000 bash bench/report.sh          # a fraction (aggregation rate is per event)
#   PREVIEW=/tmp/report-preview bash bench/report.sh   # also write HTML/text/chart there
#
# Needs redis-server on PATH (a private one is started in a temporary folder).
set -euo pipefail
cd "$(dirname "$0")/.."
args=(--users "${USERS:-1000000}" --events "${EVENTS:-30000000}" --tenants "${TENANTS:-200}")
if [[ -n "${PREVIEW:-}" ]]; then args+=(--preview "$PREVIEW"); fi
cargo build --release --quiet --example report_bench
exec target/release/examples/report_bench "${args[@]}"
