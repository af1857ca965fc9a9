#!/usr/bin/env bash
# Inline hook latency benchmark (examples/inline_load.rs): token hook at concurrency 75, and
# password import (bcrypt cost 10, PBKDF2-SHA256 600,000) — sustained rate and load shedding.
# Needs redis-server on PATH (a private one is started on a free port). Takes ~3 minutes.
# Results: stdout and bench/results/inline-<UTC time>.md.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v redis-server >/dev/null || { echo "redis-server not on PATH (apt-get install -y redis-server)"; exit 1; }
mkdir -p bench/results
out="bench/results/inline-$(date -u +%Y%m%dT%H%M%SZ).md"
cargo build --release --example inline_load
./target/release/examples/inline_load | tee "$out"
echo "saved to $out" >&2
