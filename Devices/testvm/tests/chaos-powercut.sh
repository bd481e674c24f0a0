#!/bin/sh
# Guest, one boot of the power-cut campaign (host: Devices/chaos/powercut.sh).
#   chaos-powercut.sh BINDIR PKIDIR CENTRAL_PORT CUT_AFTER_S BOOT
# The agent's state lives on the virtual state disk (/dev/vda, kept across boots). The terminal
# emulator plays the `mixed` scenario on a FunctionFS gadget (dummy_hcd); kiosk-agent runs the
# checkouts over libusb and syncs over mTLS to kiosk-central on the HOST (through qemu's
# restricted user network, relayed to the guest's loopback so the dev certificate's name holds).
#
# CUT_AFTER_S > 0: CUT_AFTER_S seconds after the agent answers its control socket, print the
# power-cut marker; the host SIGKILLs qemu on it (no shutdown, no sync, no unmount).
# CUT_AFTER_S = 0: the final boot: a few more payments, then wait until every checkout is final
# and every application synced, stop the agent and check the state disk.
#
# Console lines the host reads: "CHAOS-ACK <application id>" for every application whose enqueue
# returned (the agent logs it after the commit is on disk), "CHAOS-RECOVERY <s>" (boot script
# start -> agent answering), "CHAOS-FINAL ..." figures of the final boot.
. "$TESTVM_LIB"
REPO=${TESTVM_REPO:-$(pwd)}
BIN=${1:?usage: chaos-powercut.sh BINDIR PKIDIR PORT CUT_AFTER_S BOOT}
PKI=${2:?}
PORT=${3:?}
CUT=${4:?}
BOOT=${5:?}
PROFILE=$REPO/Devices/profiles/kiosk-emulated-terminal.json
G=term
DEVICE=kiosk-vm-0001
W=/run/chaos
STATE=/var/lib/kiosk-agent
mkdir -p "$W"
t0=$(vm_uptime_cs)
failed=0
check() { vm_check "$@" || failed=1; }

vm_mount_state_disk "$STATE" || exit 1
$VM_BB ip link set lo up
vm_net_up || exit 1
# The dev server certificate names localhost: relay the guest's loopback to the host's central.
socat "TCP-LISTEN:$PORT,bind=127.0.0.1,fork,reuseaddr" "TCP:10.0.2.100:$PORT" 2>"$W/socat.log" &

vm_load_usb_gadget_stack || exit 1
groupadd -r kiosk-agent 2>/dev/null
mkdir -p /etc/udev/rules.d && cp "$REPO/Devices/udev/70-kiosk-agent.rules" /etc/udev/rules.d/
vm_start_udevd || exit 1
vm_ffs_gadget_create "$G" 0x1209 0x4b41 || exit 1
# The kiosk's camera: vivid, streaming to the agent through every boot and power cut (liveness
# runs on it but is not required for the offer: under TCG the agent analyses too few frames
# for a check to pass; Devices/chaos/devices.sh says more).
vm_load_vivid || exit 1
if [ "$CUT" = 0 ]; then PAYMENTS=3; else PAYMENTS=1000; fi
EMU_LOG=$W/emulator.log
"$BIN/terminal-emulator" --ffs "/dev/ffs-$G" --scenario mixed --serial "EMU-4B41-000$BOOT" --count "$PAYMENTS" \
    --seconds 900 >"$EMU_LOG" 2>&1 &
EMU=$!
vm_wait_for_line "$EMU_LOG" READY 60 || { cat "$EMU_LOG"; exit 1; }
vm_ffs_bind "$G" || exit 1

cat >"$W/agent.toml" <<TOML
[agent]
device_id = "$DEVICE"
merchant_id = "merchant-dev"
state_dir = "$STATE/state"
[outbox]
min_free_disk_bytes = 0
[sync]
url = "https://localhost:$PORT"
ca_file = "$PKI/ca.pem"
cert_file = "$PKI/devices/$DEVICE.pem"
key_file = "$PKI/devices/$DEVICE.key"
idle_poll_ms = 300
[control]
socket = "$W/control.sock"
[terminal]
driver = "usb"
profile = "$PROFILE"
[checkout]
prompt_timeout_s = 1
answer_grace_ms = 1500
cooldown_s = 0
require_liveness = false
[liveness]
mode = "camera"
[camera]
device = "vivid@platform:vivid-000"
profiles_dir = "$REPO/Devices/testvm/cameras"
TOML
# Only acknowledged applications go to the console (the rest of the log stays in the guest).
( "$BIN/kiosk-agent" --config "$W/agent.toml" 2>&1; echo "agent exited $?" ) | tee "$W/agent.log" |
    sed -un 's/.*application enqueued.* application=\([0-9a-f-]*\).*/CHAOS-ACK \1/p; s/^agent exited/CHAOS-&/p' &
n=0
until "$BIN/kioskctl" status --socket "$W/control.sock" >/dev/null 2>&1 || [ $n -ge 600 ]; do $VM_BB usleep 100000; n=$((n + 1)); done
t1=$(vm_uptime_cs)
echo "CHAOS-RECOVERY boot $BOOT: agent answering $(((t1 - t0) / 100)).$(((t1 - t0) % 100 / 10)) s after the boot script started"
"$BIN/kioskctl" status --socket "$W/control.sock" >/dev/null 2>&1 || { tail -n 40 "$W/agent.log"; vm_die "agent not answering"; exit 1; }

if [ "$CUT" != 0 ]; then
    $VM_BB usleep $((CUT * 1000000))
    vm_log "$(grep -c 'sent PAYMENT_RESULT' "$EMU_LOG") payments so far; cutting the power"
    echo "CHAOS-POWERCUT-NOW"
    sleep 120
    vm_die "still running 120 s after the power-cut marker"
    exit 3
fi

# --- the final boot: let the last payments play, then wait for everything to settle ---
sent() { grep -c 'sent PAYMENT_RESULT' "$EMU_LOG"; }
DB=$STATE/state/outbox.sqlite
q() { sqlite3 "$DB" "$1"; }
n=0
while [ "$(sent)" -lt "$PAYMENTS" ] && [ $n -lt 120 ]; do $VM_BB sleep 1; n=$((n + 1)); done
n=0
while { [ "$(q "SELECT count(*) FROM checkout WHERE is_final = 0")" != 0 ] ||
    [ "$(q "SELECT count(*) FROM outbox WHERE state != 'synced'")" != 0 ]; } && [ $n -lt 180 ]; do
    $VM_BB sleep 1
    n=$((n + 1))
done
"$BIN/kioskctl" status --socket "$W/control.sock" | tee "$W/status.txt"
kill -TERM "$(pidof kiosk-agent)"
n=0
while pidof kiosk-agent >/dev/null && [ $n -lt 100 ]; do $VM_BB usleep 100000; n=$((n + 1)); done
kill "$EMU" 2>/dev/null

q "SELECT id FROM outbox ORDER BY 1" >/work-share/final-outbox
q "SELECT state, count(*) FROM checkout GROUP BY state ORDER BY 1" >/work-share/final-checkouts
check agent-stopped vm_expect_fail pidof kiosk-agent
check all-checkouts-final test "$(q "SELECT count(*) FROM checkout WHERE is_final = 0")" -eq 0
check all-applications-synced test "$(q "SELECT count(*) FROM outbox WHERE state != 'synced'")" -eq 0
check completed-have-applications test "$(q "SELECT count(*) FROM checkout WHERE state = 'completed' AND application_id IS NULL")" -eq 0
check applications-have-completed-checkouts test "$(q "SELECT count(*) FROM outbox o WHERE NOT EXISTS (SELECT 1 FROM checkout c WHERE c.application_id = o.id AND c.state = 'completed')")" -eq 0
check no-application-without-confirmed-consent test "$(q "SELECT count(*) FROM checkout WHERE application_id IS NOT NULL AND json_extract(CAST(document AS TEXT), '$.confirmed_at') IS NULL")" -eq 0
check outbox-integrity test "$(q 'PRAGMA integrity_check')" = ok
check camera-streaming-after-the-cuts grep -q "camera ok" "$W/status.txt"
check no-full-pan-on-disk vm_expect_fail grep -raq 4111111111111111 "$STATE"
echo "CHAOS-FINAL checkouts: $(tr '\n|' ' =' </work-share/final-checkouts); outbox $(wc -l </work-share/final-outbox)"
cat "$VM_RESULTS"
exit "$failed"
