#!/usr/bin/env bash
# make bench: performance measured against peers in the same run (release build).
#   - durable enqueue rate vs the sqlite3 CLI (same rows, same disk, WAL + synchronous=FULL,
#     one transaction per row), and enqueue latency p50/p99
#   - drain of a backlog by the real kiosk-agent vs curl posting the same batches over one
#     keep-alive mTLS connection to the same kind of kiosk-central, with the agent's peak RSS
#   - Haar face detection per 640x480 frame (full frame, tracked region) vs OpenCV 4.x
#     detectMultiScale (python3-opencv, one thread), and the liveness pipeline's frames per second
# Results: a table on stdout and .build/bench/results.json (name, value, unit, peer value, ratio).
set -euo pipefail
BIN=${1:-.build/release}
OUT=.build/bench
ENQUEUE_N=${BENCH_ENQUEUE_N:-2000}
DRAIN_N=${BENCH_DRAIN_N:-100000}
rm -rf "$OUT"; mkdir -p "$OUT"
Provisioning/dev-pki.sh "$OUT/pki" kiosk-bench-0001 >/dev/null
echo "== kiosk-agent bench ($(nproc) cores, $(uname -m), disk of $(df --output=source "$OUT" | tail -1))"
"$BIN/kiosk-bench" enqueue --dir "$OUT/enqueue" --count "$ENQUEUE_N" --json "$OUT/results.json"
"$BIN/kiosk-bench" drain --bin "$BIN" --dir "$OUT/drain" --pki "$OUT/pki" --count "$DRAIN_N" --json "$OUT/results.json"
Provisioning/fetch-faces.sh && "$BIN/kiosk-bench" liveness --json "$OUT/results.json"
echo "results: $OUT/results.json"
