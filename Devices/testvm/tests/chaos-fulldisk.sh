#!/bin/sh
# Guest: the agent's state filesystem fills up (a 24 MiB ext4 disk) during continuous checkouts.
#   chaos-fulldisk.sh BINDIR PKIDIR     (host: Devices/chaos/fulldisk.sh)
# kiosk-agent (simulated terminal: a payment every 300 ms, all confirmed; simulated liveness)
# queues applications while central is not there yet. Then the disk is filled to the last block:
# the agent must refuse new offers with a clear reason in its status, keep every queued
# application and stay up; when the space returns, offers resume; when central comes up, every
# acknowledged application arrives exactly once.
# Prints "CHAOS-ROW fulldisk 1 ACCEPTED AT_CENTRAL LOST DUPLICATED RECOVERY_S".
. "$TESTVM_LIB"
BIN=${1:?usage: chaos-fulldisk.sh BINDIR PKIDIR}
PKI=${2:?}
DEVICE=kiosk-vm-0001
W=/run/fulldisk
STATE=/var/lib/kiosk-agent
PORT=18443
mkdir -p "$W"
failed=0
check() { vm_check "$@" || failed=1; }
$VM_BB ip link set lo up
vm_mount_state_disk "$STATE" || exit 1

cat >"$W/agent.toml" <<TOML
[agent]
device_id = "$DEVICE"
merchant_id = "merchant-dev"
state_dir = "$STATE/state"
[outbox]
min_free_disk_bytes = 2097152
[sync]
url = "https://localhost:$PORT"
ca_file = "$PKI/ca.pem"
cert_file = "$PKI/devices/$DEVICE.pem"
key_file = "$PKI/devices/$DEVICE.key"
backoff_base_ms = 100
backoff_cap_ms = 1000
idle_poll_ms = 300
[control]
socket = "$W/control.sock"
[terminal]
driver = "simulated"
simulated_scenario = "pay-confirm"
simulated_payments = 100000
simulated_interval_ms = 300
simulated_answer_ms = 50
simulated_offer_wait_ms = 2000
[checkout]
cooldown_s = 0
[liveness]
mode = "simulated"
TOML
"$BIN/kiosk-agent" --config "$W/agent.toml" 2>"$W/agent.log" &
AGENT=$!
acks() { grep -c 'application enqueued' "$W/agent.log"; }
status_json() { "$BIN/kioskctl" status --socket "$W/control.sock" --json 2>/dev/null; }
offers() { status_json | python3 -c 'import json,sys; o=json.load(sys.stdin)["offers"]; print("accepting" if o["accepting"] else "refusing: %s" % o["reason"])' 2>/dev/null; }
wait_acks() { # N SECONDS
    _n=0
    while [ "$(acks)" -lt "$1" ] && [ $_n -lt $(($2 * 5)) ]; do $VM_BB usleep 200000; _n=$((_n + 1)); done
    [ "$(acks)" -ge "$1" ]
}
check queues-before-the-fill wait_acks 5 120
vm_note "before the fill: $(acks) applications queued, $(df -k "$STATE" | awk 'NR==2 {print $4}') KiB free"

# --- fill the filesystem to the last block ---
dd if=/dev/zero of="$STATE/fill" bs=64k 2>/dev/null
sync
vm_note "disk filled: $(df -k "$STATE" | awk 'NR==2 {print $4}') KiB free"
n=0
while ! offers | grep -q refusing && [ $n -lt 50 ]; do $VM_BB usleep 200000; n=$((n + 1)); done
reason=$(offers)
vm_note "offers while full: $reason"
check offers-refused-with-reason sh -c "echo '$reason' | grep -q 'refusing: outbox full: disk'"
full_acks=$(acks)
$VM_BB sleep 4
check no-applications-while-full test "$(acks)" -eq "$full_acks"
check agent-alive-while-full kill -0 "$AGENT"
# Each payment while full is logged with the reason (its checkout record may not fit on the disk).
check suspended-checkouts-logged grep -q 'outbox full' "$W/agent.log"

# --- space returns ---
rm -f "$STATE/fill"
sync
t0=$(vm_uptime_cs)
check offers-resume wait_acks $((full_acks + 3)) 60
t1=$(vm_uptime_cs)
recovery="$(((t1 - t0) / 100)).$(((t1 - t0) % 100 / 10))"
vm_note "offers resumed: 3 more applications $recovery s after the space returned"

# --- central comes up: everything queued must arrive exactly once ---
"$BIN/kiosk-central" serve --listen "127.0.0.1:$PORT" --cert "$PKI/server.pem" --key "$PKI/server.key" --ca "$PKI/ca.pem" \
    --db "$W/central.sqlite" 2>"$W/central.log" &
CENTRAL=$!
DB=$STATE/state/outbox.sqlite
q() { sqlite3 -cmd ".timeout 3000" "$DB" "$1"; }
n=0
while [ "$(q "SELECT count(*) FROM outbox WHERE state != 'synced'")" != 0 ] && [ $n -lt 120 ]; do $VM_BB sleep 1; n=$((n + 1)); done
kill -TERM "$AGENT"
wait "$AGENT"
agent_rc=$?
# Payments played between the last poll and the stop may still be queued: let central have them.
kill -TERM "$CENTRAL"
wait "$CENTRAL" 2>/dev/null
sed -n 's/.*application enqueued.* application=\([0-9a-f-]*\).*/\1/p' "$W/agent.log" | sort -u >"$W/acked"
q "SELECT id FROM outbox WHERE state = 'synced' ORDER BY 1" >"$W/synced"
sqlite3 "$W/central.sqlite" "SELECT id FROM applications ORDER BY 1" >"$W/central"
accepted=$(wc -l <"$W/acked")
at_central=$(wc -l <"$W/central")
q "SELECT id FROM outbox WHERE state != 'synced' ORDER BY 1" >"$W/queued"
# Lost: acknowledged, yet neither at central nor still queued in the outbox.
lost=$(sort -u "$W/central" "$W/queued" | comm -23 "$W/acked" - | wc -l)
unsynced=$(wc -l <"$W/queued")
dups=$(($(wc -l <"$W/central") - $(sort -u "$W/central" | wc -l)))
check agent-exit-clean test "$agent_rc" -eq 0
# Applications acknowledged after the drain (at most a few) stay queued in the outbox.
check acknowledged-at-central-or-queued test "$lost" -eq 0
check drained test "$unsynced" -le 3
check central-no-duplicates test "$dups" -eq 0
check outbox-integrity test "$(q 'PRAGMA integrity_check')" = ok
check all-checkouts-final test "$(q "SELECT count(*) FROM checkout WHERE is_final = 0")" -le 1
cp "$W/agent.log" /work-share/ 2>/dev/null
echo "CHAOS-ROW fulldisk 1 $accepted $at_central $lost $dups $recovery"
cat "$VM_RESULTS"
exit "$failed"
