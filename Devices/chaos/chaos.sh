#!/usr/bin/env bash
# Devices/chaos/chaos.sh [--short]: the whole-kiosk reliability campaign; prints its table.
#
#   make chaos        20 power cuts in the test VM, ≥ 1,000 network faults on loopback, the
#                     state disk filling up in the VM, the terminal and the camera unplugged and
#                     re-plugged in the VM during checkouts (CHAOS_DEVICE_CYCLES, default 10),
#                     bad configs / a corrupt DB / a damaged row, a 30-minute soak of continuous
#                     checkouts on loopback (RSS, fds, DB and WAL sizes tracked; CHAOS_SOAK_MINUTES)
#   make test         runs --short: 3 power cuts and the bad-input cases (central's faults are
#                     covered in the unit tests' ReliabilityTests; this campaign's network run
#                     adds the proxy's connection-level faults and the RSS/fd checks)
#
# Each scenario prints "CHAOS-ROW NAME RUNS ACCEPTED AT_CENTRAL LOST DUPLICATED MAX_RECOVERY_S";
# the table is made of those rows. Exit non-zero when any scenario fails. The table also goes to
# .cache/chaos/table.md (the README carries the latest full run's).
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
cd "$REPO" || exit 1
SHORT=0
[ "${1:-}" = --short ] && SHORT=1
mkdir -p .cache/chaos
rows=()
failed=()
run_scenario() { # NAME CMD...
    local name=$1
    shift
    local t0=$SECONDS rc
    "$@" >".cache/chaos/$name.out" 2>&1
    rc=$?
    sed 's/^/  /' ".cache/chaos/$name.out" | grep -v '^  CHAOS-ROW' >&2
    local row
    row=$(grep '^CHAOS-ROW' ".cache/chaos/$name.out" | tail -n 1)
    [ -n "$row" ] || row="CHAOS-ROW $name - - - - - -"
    rows+=("$row $((SECONDS - t0)) $([ "$rc" = 0 ] && echo pass || echo FAIL)")
    [ "$rc" = 0 ] || failed+=("$name")
}

if [ "$SHORT" = 1 ]; then
    run_scenario powercut "$HERE/powercut.sh" 3
    run_scenario badinput "$HERE/badinput.sh"
else
    run_scenario powercut "$HERE/powercut.sh" "${CHAOS_POWERCUTS:-20}"
    run_scenario network "$HERE/network.sh" "${CHAOS_PAYMENTS:-1800}" 1000
    run_scenario fulldisk "$HERE/fulldisk.sh"
    run_scenario devices "$HERE/devices.sh" "${CHAOS_DEVICE_CYCLES:-10}"
    run_scenario badinput "$HERE/badinput.sh"
    run_scenario soak "$HERE/soak.sh" "${CHAOS_SOAK_MINUTES:-30}"
fi

{
    echo "| scenario | runs | applications accepted | at central | lost | duplicated | max recovery (s) | wall time (s) | result |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---|"
    for r in "${rows[@]}"; do
        set -- $r
        echo "| $2 | $3 | $4 | $5 | $6 | $7 | $8 | $9 | ${10} |"
    done
} | tee .cache/chaos/table.md
echo "runs: power cuts (powercut), faults injected (network), fills (fulldisk), unplug cycles of terminal and camera (devices), cases (badinput), minutes (soak); recovery: agent answering after a boot (powercut), longest retry delay (network), offers back after the space returned (fulldisk), re-plug -> the agent has the device again (devices)"
if [ ${#failed[@]} -gt 0 ]; then
    echo "chaos: FAILED: ${failed[*]}" >&2
    exit 1
fi
echo "chaos: all scenarios passed"
