#!/usr/bin/env bash
# make bench: performance measured against peers in the same run (release build).
#   - durable enqueue rate vs the sqlite3 CLI (same rows, same disk, WAL + synchronous=FULL,
#     one transaction per row), and enqueue latency p50/p99
#   - drain of a backlog by the real kiosk-agent vs curl posting the same batches over one
#     keep-alive mTLS connection to the same kind of kiosk-central, with the agent's peak RSS
#   - Haar face detection per 640x480 frame (full frame, tracked region) vs OpenCV 4.x
#     detectMultiScale (python3-opencv, one thread), and the liveness pipeline's frames per second
#   - terminal message round trip (PING/PONG) through the USB stack in the test VM (FunctionFS
#     emulator on dummy_hcd, libusb), median and p99, vs the same link over an in-memory cable in
#     the same VM
# Results: a table on stdout and .build/bench/results.json (name, value, unit, peer value, ratio).
set -euo pipefail
BIN=${1:-.build/release}
REPO_BIN=$(cd "$BIN" && pwd)
OUT=.build/bench
ENQUEUE_N=${BENCH_ENQUEUE_N:-2000}
DRAIN_N=${BENCH_DRAIN_N:-100000}
rm -rf "$OUT"; mkdir -p "$OUT"
Provisioning/dev-pki.sh "$OUT/pki" kiosk-bench-0001 >/dev/null
DISK=$(df --output=source "$OUT" | tail -1)
RA=$(cat "/sys/class/block/$(basename "$DISK")/queue/read_ahead_kb" 2>/dev/null || echo '?')
echo "== kiosk-agent bench ($(nproc) cores, $(uname -m), disk of $DISK, its read_ahead_kb $RA)"
"$BIN/kiosk-bench" enqueue --dir "$OUT/enqueue" --count "$ENQUEUE_N" --json "$OUT/results.json"
"$BIN/kiosk-bench" drain --bin "$BIN" --dir "$OUT/drain" --pki "$OUT/pki" --count "$DRAIN_N" --json "$OUT/results.json"
Provisioning/fetch-faces.sh && "$BIN/kiosk-bench" liveness --json "$OUT/results.json"
if Devices/testvm/setup.sh >/dev/null 2>&1; then
  Devices/testvm/run.sh --timeout 300 -- Devices/testvm/tests/terminal-latency.sh "$REPO_BIN" 500 >"$OUT/usb-latency.log" 2>&1 || true
  LOG=$(sed -n 's/.*console log: //p' "$OUT/usb-latency.log" | tail -n 1)
  if [ -n "$LOG" ] && grep -aq '^BENCH usb' "$LOG"; then
    read -r _ _ USB_MED USB_P99 < <(grep -a '^BENCH usb' "$LOG" | tr -d '\r')
    read -r _ _ SIM_MED SIM_P99 < <(grep -a '^BENCH sim' "$LOG" | tr -d '\r')
    printf '%-44s %10s ms  p99 %8s ms   in-memory cable (same VM): %s ms p99 %s ms   ratio %s\n' \
      "terminal PING round trip over USB (VM, TCG)" "$USB_MED" "$USB_P99" "$SIM_MED" "$SIM_P99" \
      "$(python3 -c "print(round($SIM_MED / $USB_MED, 3))")"
  else
    echo "terminal USB latency: the VM run failed (see $OUT/usb-latency.log)"
  fi
fi
echo "results: $OUT/results.json"
