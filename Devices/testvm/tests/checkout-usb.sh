#!/bin/sh
# Guest: whole checkouts through the real kiosk-agent binary on the kernel's USB stack.
# The terminal emulator plays a USB terminal (FunctionFS gadget on dummy_hcd) running the
# `mixed` scenario (payment n: n%5 declined, n%7 "timed out" answer, n%11 no answer at all,
# else confirmed); kiosk-agent (terminal.driver = "usb": libusb hotplug, TerminalLink) runs each
# checkout and syncs the applications over mTLS to kiosk-central on the guest's loopback. In the
# middle of the run the gadget is unbound (a real unplug) and bound again.
#
#   Devices/testvm/tests/checkout-usb-vm.sh   (host: build, dev PKI, boot, print the results)
#
# Checks: every checkout reached a final state; every completed checkout's application is at
# central exactly once, no declined/timed-out checkout has one; the confirmed count matches the
# terminal's answers (less what the unplug interrupted, which is closed as abandoned); the outbox
# passes integrity_check.
. "$TESTVM_LIB"
REPO=${TESTVM_REPO:-$(pwd)}
BIN=${1:?usage: checkout-usb.sh BINDIR PKIDIR [PAYMENTS]}
PKI=${2:?}
PAYMENTS=${3:-100}
PROFILE=$REPO/Devices/profiles/kiosk-emulated-terminal.json
G=term
SERIAL=EMU-4B41-0001
DEVICE=kiosk-vm-0001
W=/run/checkout-usb
mkdir -p "$W"
failed=0
check() { vm_check "$@" || failed=1; }

$VM_BB ip link set lo up
vm_load_usb_gadget_stack || exit 1
groupadd -r kiosk-agent 2>/dev/null
cp "$REPO/Devices/udev/70-kiosk-agent.rules" /etc/udev/rules.d/ 2>/dev/null || { mkdir -p /etc/udev/rules.d && cp "$REPO/Devices/udev/70-kiosk-agent.rules" /etc/udev/rules.d/; }
vm_start_udevd || exit 1
vm_ffs_gadget_create "$G" 0x1209 0x4b41 || exit 1

# --- kiosk-central on loopback (mTLS) ---
"$BIN/kiosk-central" serve --listen 127.0.0.1:0 --port-file "$W/central.port" \
    --cert "$PKI/server.pem" --key "$PKI/server.key" --ca "$PKI/ca.pem" --db "$W/central.sqlite" 2>"$W/central.log" &
CENTRAL=$!
n=0
while [ ! -s "$W/central.port" ] && [ $n -lt 300 ]; do $VM_BB usleep 100000; n=$((n + 1)); done
[ -s "$W/central.port" ] || { cat "$W/central.log"; vm_die "kiosk-central did not start"; exit 1; }
PORT=$(cat "$W/central.port")

# --- the terminal (emulator on the gadget) ---
EMU_LOG=$W/emulator.log
: >"$EMU_LOG"
"$BIN/terminal-emulator" --ffs "/dev/ffs-$G" --scenario mixed --serial "$SERIAL" --count "$PAYMENTS" --seconds 900 >"$EMU_LOG" 2>&1 &
EMU=$!
vm_wait_for_line "$EMU_LOG" READY 60 || { cat "$EMU_LOG"; exit 1; }
vm_ffs_bind "$G" || exit 1

# --- kiosk-agent ---
cat >"$W/agent.toml" <<TOML
[agent]
device_id = "$DEVICE"
merchant_id = "merchant-dev"
state_dir = "$W/state"
[outbox]
min_free_disk_bytes = 0
[sync]
url = "https://localhost:$PORT"
ca_file = "$PKI/ca.pem"
cert_file = "$PKI/devices/$DEVICE.pem"
key_file = "$PKI/devices/$DEVICE.key"
idle_poll_ms = 500
[control]
socket = "$W/control.sock"
[terminal]
driver = "usb"
profile = "$PROFILE"
[checkout]
prompt_timeout_s = 1
answer_grace_ms = 1500
cooldown_s = 0
[liveness]
mode = "simulated"
TOML
"$BIN/kiosk-agent" --config "$W/agent.toml" 2>"$W/agent.log" &
AGENT=$!
n=0
until "$BIN/kioskctl" status --socket "$W/control.sock" >/dev/null 2>&1 || [ $n -ge 300 ]; do $VM_BB usleep 100000; n=$((n + 1)); done
"$BIN/kioskctl" watch --socket "$W/control.sock" >"$W/watch.log" 2>&1 &
WATCH=$!

sent() { grep -c 'sent PAYMENT_RESULT' "$EMU_LOG"; }
# --- unplug in the middle of the run, then plug back in ---
t0=$(vm_uptime_cs)
while [ "$(sent)" -lt $((PAYMENTS * 2 / 5)) ]; do
    kill -0 "$EMU" 2>/dev/null || break
    [ $(($(vm_uptime_cs) - t0)) -lt 60000 ] || break
    $VM_BB usleep 200000
done
vm_note "unplug after $(sent) payments"
vm_ffs_unbind "$G"
$VM_BB usleep 1500000
vm_ffs_bind "$G"

# --- wait for the terminal to play every payment, then for the agent to finish and sync ---
while [ "$(sent)" -lt "$PAYMENTS" ] && kill -0 "$EMU" 2>/dev/null; do
    [ $(($(vm_uptime_cs) - t0)) -lt 60000 ] || break
    $VM_BB usleep 500000
done
open_checkouts() { sqlite3 "$W/state/outbox.sqlite" "SELECT count(*) FROM checkout WHERE is_final = 0"; }
all_checkouts() { sqlite3 "$W/state/outbox.sqlite" "SELECT count(*) FROM checkout"; }
unsynced() { sqlite3 "$W/state/outbox.sqlite" "SELECT count(*) FROM outbox WHERE state != 'synced'"; }
# Done when every payment has its checkout, all are final and every application is synced.
n=0
while { [ "$(all_checkouts)" -lt "$(sent)" ] || [ "$(open_checkouts)" != 0 ] || [ "$(unsynced)" != 0 ]; } && [ $n -lt 120 ]; do
    $VM_BB sleep 1
    n=$((n + 1))
done
t1=$(vm_uptime_cs)
"$BIN/kioskctl" status --socket "$W/control.sock"
kill "$WATCH" 2>/dev/null
# kioskctl doctor on the real USB terminal: through the running agent, then (agent stopped) directly over libusb.
"$BIN/kioskctl" doctor --config "$W/agent.toml" --json --timeout 10 >"$W/doctor-agent.json" 2>"$W/doctor-agent.err"
kill -TERM "$AGENT"; wait "$AGENT"; agent_rc=$?
"$BIN/kioskctl" doctor --config "$W/agent.toml" --json --timeout 10 >"$W/doctor-usb.json" 2>"$W/doctor-usb.err"
kill "$EMU" 2>/dev/null; wait "$EMU" 2>/dev/null
doctor_terminal() { # FILE: the terminal check's "status message"
    python3 -c 'import json,sys; r=[c for c in json.load(open(sys.argv[1])) if c["check"]=="terminal"]; print(r[0]["status"], r[0]["message"]) if r else print("none")' "$1" 2>&1
}
vm_note "doctor, agent running: $(doctor_terminal "$W/doctor-agent.json")"
vm_note "doctor, agent stopped: $(doctor_terminal "$W/doctor-usb.json")"
kill -TERM "$CENTRAL"; wait "$CENTRAL" 2>/dev/null

DB=$W/state/outbox.sqlite
q() { sqlite3 "$DB" "$1"; }
payments=$(sent)
confirmed_by_terminal=$(grep -c 'answered SHOW_PROMPT .*: confirmed' "$EMU_LOG")
completed=$(q "SELECT count(*) FROM checkout WHERE state = 'completed'")
declined=$(q "SELECT count(*) FROM checkout WHERE state = 'declined'")
timedout=$(q "SELECT count(*) FROM checkout WHERE state = 'timed_out'")
abandoned=$(q "SELECT count(*) FROM checkout WHERE state = 'abandoned'")
total=$(q "SELECT count(*) FROM checkout")
q "SELECT application_id FROM checkout WHERE state = 'completed' ORDER BY 1" >"$W/agent-apps"
q "SELECT id FROM outbox ORDER BY 1" >"$W/outbox-apps"
sqlite3 "$W/central.sqlite" "SELECT id FROM applications ORDER BY 1" >"$W/central-apps" 2>"$W/central-q.err" ||
    sqlite3 "$W/central.sqlite" ".tables" >>"$W/central-q.err"
central=$(wc -l <"$W/central-apps")
central_unique=$(sort -u "$W/central-apps" | wc -l)
secs=$(((t1 - t0) / 100))
vm_note "payments $payments, checkouts $total: completed $completed, declined $declined, timed_out $timedout, abandoned $abandoned; terminal confirmed $confirmed_by_terminal; central $central; ${secs} s"

check agent-exit-clean test "$agent_rc" -eq 0
check all-payments-played test "$payments" -eq "$PAYMENTS"
check one-checkout-per-payment test "$total" -eq "$payments"
check all-checkouts-final test "$(open_checkouts)" -eq 0
check completed-equals-outbox cmp -s "$W/agent-apps" "$W/outbox-apps"
check central-has-each-once-exactly cmp -s "$W/agent-apps" "$W/central-apps"
check central-no-duplicates test "$central" -eq "$central_unique"
# Every checkout the terminal confirmed is completed, except those the unplug cut (abandoned).
check confirmed-become-applications test "$completed" -ge $((confirmed_by_terminal - abandoned))
check confirmed-not-more test "$completed" -le "$confirmed_by_terminal"
check declined-none test "$(q "SELECT count(*) FROM checkout WHERE state IN ('declined','timed_out') AND application_id IS NOT NULL")" -eq 0
check unplug-abandons-at-most-two test "$abandoned" -le 2
check outbox-integrity test "$(q 'PRAGMA integrity_check')" = ok
check no-full-pan-in-db vm_expect_fail grep -aq 4111111111111111 "$DB"
check watch-saw-transitions grep -q completed "$W/watch.log"
doctor_says() { doctor_terminal "$1" | grep -q "$2"; }
check doctor-terminal-through-agent doctor_says "$W/doctor-agent.json" '^OK answered PING through kiosk-agent'
check doctor-terminal-over-libusb doctor_says "$W/doctor-usb.json" "^OK .*serial $SERIAL"
cp "$W"/*.log "$W/agent.toml" /work-share/ 2>/dev/null
echo "FIGURES checkout-usb: $payments payments -> $completed applications at central (declined $declined, timed out $timedout, abandoned by unplug $abandoned) in $secs s"
[ "$failed" = 0 ] || { echo "--- agent log (tail)"; tail -n 60 "$W/agent.log"; echo "--- emulator log (tail)"; tail -n 40 "$EMU_LOG"; cat "$W/central-q.err"; }
vm_log "results:"
cat "$VM_RESULTS"
exit "$failed"
