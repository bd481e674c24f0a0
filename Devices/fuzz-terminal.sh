#!/usr/bin/env bash
# Builds the terminal protocol's libFuzzer target (in .build-fuzz) and fuzzes the frame
# decoder and message codec for SECONDS (default 20), starting from a seed corpus of valid encoded
# messages that the target writes itself. Prints executions and crashes; exits non-zero on a crash.
#
#   Devices/fuzz-terminal.sh [SECONDS]
#
# See Devices/terminal-protocol.md §7.
set -euo pipefail

seconds="${1:-20}"
case "$seconds" in '' | *[!0-9]*) echo "usage: $0 [SECONDS]" >&2; exit 2 ;; esac

cd "$(dirname "$0")/.."
scratch=.build-fuzz
work="$scratch/terminal-fuzz"

build_start=$(date +%s)
# The fuzzer is compiled straight with swiftc from the protocol's own files (the frame decoder,
# the message codec and KioskCore's PCI guard, which import nothing else), not through SwiftPM:
# a sanitized SwiftPM build recompiles every dependency (swift-crypto among them) for minutes.
# -DTERMINAL_FUZZ_LIBFUZZER: main hands over to LLVMFuzzerRunDriver, declared with @_extern(c),
# hence the Extern feature (Sources/terminal-fuzz/EntryPoint.swift); the entry point is renamed
# and `main` pointed at it, as SwiftPM does, because -sanitize=fuzzer links libFuzzer's own main.
# ld.gold's "Cannot export local symbol '__asan_…'" warnings (hundreds) are harmless and filtered.
sources=(Sources/KioskCore/PCIGuard.swift Sources/PaymentTerminal/Frame.swift Sources/PaymentTerminal/Message.swift
    Sources/PaymentTerminal/MessageCodec.swift Sources/terminal-fuzz/*.swift)
mkdir -p "$work"
fuzzer="$work/terminal-fuzz"
set +e
swiftc -module-name terminal_fuzz -parse-as-library -sanitize=fuzzer,address -O \
    -DTERMINAL_FUZZ_LIBFUZZER -enable-experimental-feature Extern \
    -Xfrontend -entry-point-function-name -Xfrontend terminal_fuzz_main \
    -Xlinker --defsym -Xlinker main=terminal_fuzz_main \
    -module-cache-path "$scratch/module-cache" "${sources[@]}" -o "$fuzzer" 2>&1 |
    grep -v "Cannot export local symbol"
build_status=${PIPESTATUS[0]}
set -e
if [ "$build_status" -ne 0 ]; then
    echo "terminal-fuzz: fuzz build failed (exit $build_status); a new import in these files? ${sources[*]}" >&2
    exit 1
fi
echo "fuzz build: $(($(date +%s) - build_start)) s"

rm -rf "$work/seeds" "$work/artifacts"
mkdir -p "$work/corpus" "$work/seeds" "$work/artifacts"

# libFuzzer writes new inputs to the first directory and only reads the others.
# -max_len 8300: room for two maximum frames (4101 bytes each).
run_start=$(date +%s)
set +e
TERMINAL_FUZZ_WRITE_SEEDS="$work/seeds" "$fuzzer" \
    -max_total_time="$seconds" -max_len=8300 -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$work/artifacts/" \
    "$work/corpus" "$work/seeds" >"$work/fuzz.log" 2>&1
status=$?
set -e

grep -E '^(INFO: seed corpus|Done |stat::)|ERROR|invariant violated|SUMMARY' "$work/fuzz.log" || true
execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/fuzz.log" | tail -n 1)
rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$work/fuzz.log" | tail -n 1)
crashes=$(find "$work/artifacts" -type f | wc -l)
echo "terminal-fuzz: ${execs:-?} execs in $(($(date +%s) - run_start)) s (${rate:-?} exec/s), corpus $(find "$work/corpus" -type f | wc -l) inputs, ${crashes} crashes"
if [ "$status" -ne 0 ] || [ "$crashes" -ne 0 ]; then
    echo "terminal-fuzz: FAILED (exit $status); inputs in $work/artifacts, log in $work/fuzz.log" >&2
    echo "replay without libFuzzer: swift build --product terminal-fuzz && .build/debug/terminal-fuzz $work/artifacts" >&2
    exit 1
fi
echo "terminal-fuzz: 0 crashes"
