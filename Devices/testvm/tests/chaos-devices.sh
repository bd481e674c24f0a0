#!/bin/sh
# Guest, the device-unplug campaign (host: Devices/chaos/devices.sh), all in one boot.
#   chaos-devices.sh BINDIR PKIDIR CENTRAL_PORT SHOPPER_DIR SCHEDULE
# The terminal emulator plays the `mixed` scenario on a FunctionFS gadget (dummy_hcd) without
# end; kiosk-agent runs the checkouts over libusb, syncs over mTLS to kiosk-central on the HOST
# (relayed as in chaos-powercut.sh) and checks liveness on the camera: vivid's HDMI capture,
# which a synthetic shopper (kioskctl dev feed-shopper, SHOPPER_DIR/live) feeds through vivid's
# output loop (as liveness-vivid.sh). SHOPPER_DIR "-": no shopper; liveness.mode = camera all the
# same (the camera streams from vivid, supervised, and is unplugged and reloaded) but the
# checkout does not wait for liveness (checkout.require_liveness = false).
#
# SCHEDULE: one word per cycle, "MODE:WAIT:TERM_OUT:CAM_OUT" (random, drawn by the host):
# sleep WAIT tenths of a second, then MODE t (terminal unplugged TERM_OUT tenths, then the
# camera), c (camera then terminal) or b (both unplugged at once). The terminal is unplugged by
# unbinding the gadget (vm_ffs_unbind) and re-plugged by binding it; the camera by rmmod vivid
# (when the kernel refuses it because the device node is still open: unbind vivid's platform
# driver, the real unplug, then rmmod as soon as the module is free) and modprobe.
#
# Recovery: from the re-plug (the gadget's bind / the creation of vivid's capture node) until the agent logs the
# device again: "payment terminal connected" (the driver opened it; "answering" = its first PING
# answered is reported too) and "camera ok" (the supervisor has frames again).
# Then the emulator stops, the agent finishes every checkout and syncs every application; checks
# as chaos-powercut.sh's final boot, plus: the agent never restarted (same PID all along).
#
# Console lines the host reads: "CHAOS-ACK <application id>", "CHAOS-RECOVERY terminal|camera
# CYCLE S", "CHAOS-FD <s>" (unbind -> rmmod possible), "CHAOS-FINAL ...".
. "$TESTVM_LIB"
REPO=${TESTVM_REPO:-$(pwd)}
BIN=${1:?usage: chaos-devices.sh BINDIR PKIDIR PORT SHOPPER_DIR SCHEDULE}
PKI=${2:?}
PORT=${3:?}
SHOP=${4:?}
SCHEDULE=${5:?}
PROFILE=$REPO/Devices/profiles/kiosk-emulated-terminal.json
G=term
DEVICE=kiosk-vm-0001
ID=vivid@platform:vivid-000
W=/run/chaos
STATE=$W/state
mkdir -p "$W"
failed=0
check() { vm_check "$@" || failed=1; }
now() { vm_uptime_cs; }
secs() { echo "$(($1 / 100)).$(($1 % 100 / 10))"; } # centiseconds -> "S.T"
wall_cs() { date +%s%2N; } # wall clock, centiseconds (the agent's log lines carry wall time)
# The wall time (cs) of the Nth agent log line containing TEXT.
log_cs() { date -d "$(grep "$2" "$W/agent.log" | sed -n "$1{s/ .*//;p;q}")" +%s%2N; }

$VM_BB ip link set lo up
vm_net_up || exit 1
socat "TCP-LISTEN:$PORT,bind=127.0.0.1,fork,reuseaddr" "TCP:10.0.2.100:$PORT" 2>"$W/socat.log" &

vm_load_usb_gadget_stack || exit 1
groupadd -r kiosk-agent 2>/dev/null
mkdir -p /etc/udev/rules.d && cp "$REPO/Devices/udev/70-kiosk-agent.rules" /etc/udev/rules.d/
vm_start_udevd || exit 1
vm_ffs_gadget_create "$G" 0x1209 0x4b41 || exit 1
vm_load_vivid || exit 1

EMU_LOG=$W/emulator.log
"$BIN/terminal-emulator" --ffs "/dev/ffs-$G" --scenario mixed --serial EMU-4B41-0001 --count 100000 \
    --seconds 3600 >"$EMU_LOG" 2>&1 &
EMU=$!
vm_wait_for_line "$EMU_LOG" READY 60 || { cat "$EMU_LOG"; exit 1; }
vm_ffs_bind "$G" || exit 1

# Without a shopper liveness cannot pass: the camera still streams (supervised, in status) and
# is unplugged, but the checkout does not wait for it (checkout.require_liveness = false).
if [ "$SHOP" = - ]; then REQUIRE=false; else REQUIRE=true; fi
cat >"$W/agent.toml" <<TOML
[agent]
device_id = "$DEVICE"
merchant_id = "merchant-dev"
state_dir = "$STATE"
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
require_liveness = $REQUIRE
[liveness]
mode = "camera"
time_limit_s = 30
thresholds_file = "$W/thresholds.json"
[camera]
device = "$ID"
profiles_dir = "$REPO/Devices/testvm/cameras"
TOML
# As liveness-vivid.sh: a longer challenge window for the debug agent in a VM.
echo '{"challenge_window": 20}' >"$W/thresholds.json"
( "$BIN/kiosk-agent" --config "$W/agent.toml" 2>&1; echo "agent exited $?" ) | tee "$W/agent.log" |
    sed -un 's/.*application enqueued.* application=\([0-9a-f-]*\).*/CHAOS-ACK \1/p; s/^agent exited/CHAOS-&/p' &
n=0
until "$BIN/kioskctl" status --socket "$W/control.sock" >/dev/null 2>&1 || [ $n -ge 1200 ]; do $VM_BB usleep 100000; n=$((n + 1)); done
"$BIN/kioskctl" status --socket "$W/control.sock" >/dev/null 2>&1 || { tail -n 40 "$W/agent.log"; vm_die "agent not answering"; exit 1; }
PID=$(pidof kiosk-agent)
vm_log "agent up, pid $PID"

FEEDER=
feeder_start() {
    [ "$SHOP" = - ] && return 0
    "$BIN/kioskctl" dev feed-shopper "$SHOP/live" --device "$VM_VIVID_OUT" --socket "$W/control.sock" --fps 15 \
        --seconds 3600 --sequence-seconds 12 >>"$W/feed.log" 2>&1 &
    FEEDER=$!
}
feeder_stop() {
    [ -n "$FEEDER" ] || return 0
    kill "$FEEDER" 2>/dev/null
    wait "$FEEDER" 2>/dev/null
    FEEDER=
}
feeder_start

count() { grep -c "$1" "$W/agent.log"; }
sent() { grep -c 'sent PAYMENT_RESULT' "$EMU_LOG"; }
# Wait (at most 60 s) for the camera's first frames and the terminal's first answer.
vm_wait_for_line "$W/agent.log" "camera ok" 60 || vm_note "camera not streaming 60 s after the start"
vm_wait_for_line "$W/agent.log" "payment terminal answering" 60 || vm_note "terminal not answering 60 s after the start"

MAXREC=0
RECOVERY_FAILS=0
note_recovery() { # DEVICE CYCLE CS
    set -- "$1" "$2" "$(($3 < 0 ? 0 : $3))"
    echo "CHAOS-RECOVERY $1 $2 $(secs "$3")"
    [ "$3" -gt "$MAXREC" ] && MAXREC=$3
}

# --- terminal ---
term_unplug() {
    T_CONN=$(count 'payment terminal connected')
    T_ANS=$(count 'payment terminal answering')
    vm_ffs_unbind "$G"
}
term_plug() {
    T_PLUG_WALL=$(wall_cs) # the plug: the agent may see it before the bind even returns
    vm_ffs_bind "$G" || failed=1
    T_PLUG=$(now)
}
term_wait() { # CYCLE: until the driver opened it again (then answering, reported only)
    while [ "$(count 'payment terminal connected')" -le "$T_CONN" ]; do
        [ $(($(now) - T_PLUG)) -lt 6000 ] || { vm_note "cycle $1: terminal not back 60 s after the re-plug"; RECOVERY_FAILS=$((RECOVERY_FAILS + 1)); return 1; }
        $VM_BB usleep 100000
    done
    # From the agent's own log line: this loop may have started late (mode b).
    t=$(($(log_cs $((T_CONN + 1)) 'payment terminal connected') - T_PLUG_WALL))
    note_recovery terminal "$1" "$t"
    while [ "$(count 'payment terminal answering')" -le "$T_ANS" ] && [ $(($(now) - T_PLUG)) -lt 6000 ]; do $VM_BB usleep 100000; done
    ta=$(($(log_cs $((T_ANS + 1)) 'payment terminal answering' 2>/dev/null || echo "$T_PLUG_WALL") - T_PLUG_WALL))
    vm_log "cycle $1: terminal connected after $(secs "$t") s, answering (first PING answered) after $(secs "$ta") s"
}

# --- camera ---
RMMOD_REFUSED=0
MAXFD=0
cam_unplug() { # CYCLE
    C_OK=$(count 'camera ok')
    feeder_stop # the scene in front of the camera: not the agent's
    if rmmod vivid 2>"$W/rmmod.err"; then
        vm_log "cycle $1: rmmod vivid done"
        return 0
    fi
    RMMOD_REFUSED=$((RMMOD_REFUSED + 1))
    vm_log "cycle $1: rmmod vivid refused ($(cat "$W/rmmod.err")); unbinding vivid's driver (the unplug) instead"
    t0=$(now)
    echo vivid.0 >/sys/bus/platform/drivers/vivid/unbind || { vm_note "cycle $1: unbind vivid.0 failed"; failed=1; }
    # The agent must let go of the dead node (ENODEV): rmmod works once no fd holds the module.
    until rmmod vivid 2>"$W/rmmod.err"; do
        if [ $(($(now) - t0)) -ge 3000 ]; then
            vm_note "cycle $1: vivid still held 30 s after the unplug: $(cat "$W/rmmod.err"); holders: $(ls -l /proc/"$PID"/fd 2>/dev/null | grep -c video) video fds in the agent"
            FD_STUCK=1
            return 1
        fi
        $VM_BB usleep 100000
    done
    t=$(($(now) - t0))
    echo "CHAOS-FD $1 $(secs "$t")"
    [ "$t" -gt "$MAXFD" ] && MAXFD=$t
    vm_log "cycle $1: vivid module free $(secs "$t") s after the unplug; rmmod done"
}
VIVID_OPTS="n_devs=1 node_types=0x101 num_inputs=2 input_types=0x0c num_outputs=1 output_types=0x01"
# With a shopper: vm_load_vivid's HDMI-loop set-up (DV timings, formats, loop on) again, on a
# hidden capture node so that the agent (reopening every 2 s) does not open it halfway; a real
# camera arrives ready. The agent may still open it while modprobe runs (seconds under TCG):
# then setting the DV timings fails (EBUSY) and that cycle's checkouts see no shopper (noted).
vivid_loop_setup() {
    for _d in /sys/class/video4linux/video*; do
        case "$(cat "$_d/name")" in
        *vid-cap) VM_VIVID_CAP=/dev/${_d##*/} ;;
        *vid-out) VM_VIVID_OUT=/dev/${_d##*/} ;;
        esac
    done
    _cap=$VM_VIVID_CAP
    mv "$_cap" /dev/.vivid-cap-setup || return 1
    VM_VIVID_CAP=/dev/.vivid-cap-setup
    _rc=1
    v4l2-ctl -d "$VM_VIVID_CAP" --set-input=1 >/dev/null &&
        _vm_set_dv_640x480 "$VM_VIVID_CAP" && _vm_set_dv_640x480 "$VM_VIVID_OUT" &&
        v4l2-ctl -d "$VM_VIVID_CAP" --set-fmt-video=width=640,height=480,pixelformat=RGB3,field=none &&
        v4l2-ctl -d "$VM_VIVID_OUT" --set-fmt-video-out=width=640,height=480,pixelformat=RGB3,field=none &&
        v4l2-ctl -d "$VM_VIVID_CAP" --set-ctrl=loop_video=1,osd_text_mode=2 && _rc=0
    mv /dev/.vivid-cap-setup "$_cap"
    VM_VIVID_CAP=$_cap
    return $_rc
}
cam_plug() { # CYCLE
    if lsmod | grep -q '^vivid '; then
        vm_note "cycle $1: vivid still loaded (held), skipping the re-plug"
        return 1
    fi
    _t0=$(wall_cs)
    # The plug: the moment vivid's capture node appears (modprobe takes seconds under TCG and
    # the agent may open the camera before it returns; the node's ctime moves when udev sets
    # its group), seen by a 50 ms poll.
    rm -f "$W/cap-appeared"
    (
        while :; do
            for _d in /sys/class/video4linux/video*; do
                [ -e "$_d/name" ] && read -r _n <"$_d/name" && case "$_n" in
                *vid-cap) [ -e "/dev/${_d##*/}" ] && { wall_cs >"$W/cap-appeared"; exit 0; } ;;
                esac
            done
            $VM_BB usleep 50000
        done
    ) &
    _watch=$!
    # shellcheck disable=SC2086
    modprobe vivid $VIVID_OPTS || { kill "$_watch"; vm_note "cycle $1: modprobe vivid failed"; failed=1; return 1; }
    C_PLUG=$(now)
    _n=0
    while [ ! -s "$W/cap-appeared" ] && [ $_n -lt 50 ]; do $VM_BB usleep 100000; _n=$((_n + 1)); done
    kill "$_watch" 2>/dev/null
    wait "$_watch" 2>/dev/null
    C_PLUG_WALL=$(cat "$W/cap-appeared" 2>/dev/null)
    [ -n "$C_PLUG_WALL" ] || { C_PLUG_WALL=$_t0; vm_note "cycle $1: capture node not seen; recovery from modprobe's start"; }
    vm_log "cycle $1: vivid loaded (modprobe $(secs $(($(wall_cs) - _t0))) s, capture node after $(secs $((C_PLUG_WALL - _t0))) s)"
    if [ "$SHOP" != - ]; then
        # The node was hidden during the set-up: the camera is there from its end on (when the
        # set-up failed, the agent had opened the node before it was hidden: keep its arrival).
        if vivid_loop_setup >"$W/vivid-load.log" 2>&1; then
            C_PLUG_WALL=$(wall_cs)
        else
            vm_note "cycle $1: vivid loop set-up incomplete, the agent opened the node first ($(tail -n 1 "$W/vivid-load.log"))"
        fi
        feeder_start
    fi
}
cam_wait() { # CYCLE
    [ -n "${C_PLUG:-}" ] || return 1
    while [ "$(count 'camera ok')" -le "$C_OK" ]; do
        [ $(($(now) - C_PLUG)) -lt 6000 ] || { vm_note "cycle $1: camera not back 60 s after the re-plug"; RECOVERY_FAILS=$((RECOVERY_FAILS + 1)); return 1; }
        $VM_BB usleep 100000
    done
    t=$(($(log_cs $((C_OK + 1)) 'camera ok') - C_PLUG_WALL))
    note_recovery camera "$1" "$t"
    vm_log "cycle $1: camera streaming again after $(secs "$t") s"
}

tenths() { $VM_BB usleep $(($1 * 100000)); }
FD_STUCK=0
i=0
T_START=$(now)
for step in $SCHEDULE; do
    i=$((i + 1))
    IFS=: read -r mode wait tout cout <<EOF
$step
EOF
    tenths "$wait"
    vm_log "cycle $i ($mode): $(sent) payments so far, terminal out ${tout}00 ms, camera out ${cout}00 ms"
    C_PLUG=
    case "$mode" in
    t)
        term_unplug; tenths "$tout"; term_plug; term_wait "$i"
        cam_unplug "$i"; tenths "$cout"; cam_plug "$i"; cam_wait "$i" ;;
    c)
        cam_unplug "$i"; tenths "$cout"; cam_plug "$i"; cam_wait "$i"
        term_unplug; tenths "$tout"; term_plug; term_wait "$i" ;;
    *)
        term_unplug; cam_unplug "$i"; tenths "$cout"; cam_plug "$i"; tenths "$tout"; term_plug
        cam_wait "$i"; term_wait "$i" ;;
    esac
    kill -0 "$PID" 2>/dev/null || { vm_note "cycle $i: the agent died"; break; }
done
T_CYCLES=$(now)
# A few more checkouts with both devices back.
n0=$(sent)
n=0
while [ "$(sent)" -lt $((n0 + 3)) ] && [ $n -lt 60 ]; do $VM_BB sleep 1; n=$((n + 1)); done

# --- the end: the terminal stops offering payments; everything settles ---
kill -TERM "$EMU" 2>/dev/null
wait "$EMU" 2>/dev/null
feeder_stop
DB=$STATE/outbox.sqlite
q() { sqlite3 "$DB" "$1"; }
n=0
while { [ "$(q "SELECT count(*) FROM checkout WHERE is_final = 0")" != 0 ] ||
    [ "$(q "SELECT count(*) FROM outbox WHERE state != 'synced'")" != 0 ]; } && [ $n -lt 180 ]; do
    $VM_BB sleep 1
    n=$((n + 1))
done
"$BIN/kioskctl" status --socket "$W/control.sock" --json >"$W/status.json" 2>&1
"$BIN/kioskctl" status --socket "$W/control.sock"
PID_END=$(pidof kiosk-agent)
EXITS=$(grep -c 'agent exited' "$W/agent.log")
CRASH_LINES=$(grep -ac 'Fatal error\|Segmentation fault\|Illegal instruction\|Trace/breakpoint' "$W/agent.log")
kill -TERM "$PID_END"
n=0
while pidof kiosk-agent >/dev/null && [ $n -lt 100 ]; do $VM_BB usleep 100000; n=$((n + 1)); done

q "SELECT id FROM outbox ORDER BY 1" >/work-share/final-outbox
q "SELECT state, count(*) FROM checkout GROUP BY state ORDER BY 1" >/work-share/final-checkouts
cp "$W/agent.log" "$EMU_LOG" "$W/status.json" /work-share/ 2>/dev/null
check agent-never-restarted test "$PID_END" = "$PID" -a "$EXITS" -eq 0
check agent-status-same-pid python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print("OK status pid:", d.get("pid")); sys.exit(0 if str(d.get("pid")) == sys.argv[2] else 1)' "$W/status.json" "$PID"
check agent-stopped vm_expect_fail pidof kiosk-agent
check no-crash-lines test "$CRASH_LINES" -eq 0
check agent-exit-clean grep -qx 'agent exited 0' "$W/agent.log"
check all-checkouts-final test "$(q "SELECT count(*) FROM checkout WHERE is_final = 0")" -eq 0
check no-half-checkout test "$(q "SELECT count(*) FROM checkout WHERE state NOT IN ('completed','declined','timed_out','abandoned','liveness_failed','ineligible')")" -eq 0
# A payment whose write the unplug cut on the terminal's side may still have reached the agent
# (then it is not in the emulator's "sent" lines): count payments by their token (tok_emu_N).
REF="json_extract(CAST(document AS TEXT), '\$.payment.transaction_ref')"
q "SELECT $REF, payment_token, state, id FROM checkout ORDER BY started_at" >/work-share/final-checkout-list
check one-checkout-per-payment test "$(q "SELECT count(DISTINCT payment_token) FROM checkout")" -eq "$(q "SELECT count(*) FROM checkout")"
vm_note "checkouts $(q "SELECT count(*) FROM checkout") for $(sent) payments the terminal logged as sent (a payment cut by an unplug on the terminal's side can still reach the agent)"
check all-applications-synced test "$(q "SELECT count(*) FROM outbox WHERE state != 'synced'")" -eq 0
check completed-have-applications test "$(q "SELECT count(*) FROM checkout WHERE state = 'completed' AND application_id IS NULL")" -eq 0
check applications-have-completed-checkouts test "$(q "SELECT count(*) FROM outbox o WHERE NOT EXISTS (SELECT 1 FROM checkout c WHERE c.application_id = o.id AND c.state = 'completed')")" -eq 0
check no-application-without-confirmed-consent test "$(q "SELECT count(*) FROM checkout WHERE application_id IS NOT NULL AND json_extract(CAST(document AS TEXT), '$.confirmed_at') IS NULL")" -eq 0
check outbox-integrity test "$(q 'PRAGMA integrity_check')" = ok
check no-full-pan-on-disk vm_expect_fail grep -raq 4111111111111111 "$STATE"
check devices-recovered test "$RECOVERY_FAILS" -eq 0
check agent-lets-go-of-the-camera test "$FD_STUCK" -eq 0
vm_note "cycles $i in $(secs $((T_CYCLES - T_START))) s; payments $(sent); rmmod refused while streaming $RMMOD_REFUSED times (module free after the unplug within $(secs "$MAXFD") s); max recovery $(secs "$MAXREC") s"
echo "CHAOS-FINAL checkouts: $(tr '\n|' ' =' </work-share/final-checkouts); outbox $(wc -l </work-share/final-outbox); payments $(sent); cycles $i; rmmod-refused $RMMOD_REFUSED; max-fd-release $(secs "$MAXFD")"
cat "$VM_RESULTS"
exit "$failed"
