#!/bin/sh
# Guest, boot 2 of the self-test: every check that needs no power cut, in one boot.
# Usage: selfchecks.sh VM_SELFCHECK TOKEN ECHO_HOSTPORT
#   run.sh --disk IMG (written by powercut-write.sh) --net-forward ECHO_HOSTPORT:10.0.2.100:7000
# Appends PASS/FAIL/INFO lines to /work-share/results; exits non-zero if any check failed.
. "$TESTVM_LIB"
BIN=${1:?vm-selfcheck binary}
TOKEN=${2:?token}
ECHO_HOSTPORT=${3:?echo server port on the host loopback}
GUEST_FWD=10.0.2.100:7000
failed=0
check() { vm_check "$@" || failed=1; }

# --- State disk after the power cut of boot 1 -------------------------------------------------
DIR=/var/lib/kiosk-agent
if vm_mount_state_disk "$DIR"; then
    check_synced() {
        got=$(cat "$DIR/synced" 2>/dev/null)
        if [ "$got" = "$TOKEN" ]; then echo "OK fsync: synced file intact after the power cut"; return 0; fi
        echo "FAIL fsync: synced file holds '${got:-<missing>}', expected $TOKEN"
        return 1
    }
    check powercut-fsync-survives check_synced
    if [ "$(cat "$DIR/unsynced" 2>/dev/null)" = "$TOKEN" ]; then
        vm_note "powercut-unsynced: the un-fsync'd write survived (reached the disk before the cut)"
    elif [ -e "$DIR/unsynced" ]; then
        vm_note "powercut-unsynced: the un-fsync'd file exists but is empty/partial (lost data)"
    else
        vm_note "powercut-unsynced: the un-fsync'd write is gone (expected without fsync)"
    fi
    dmesg | grep -iE 'EXT4-fs.*(recover|orphan)' | tail -n 2 | while read -r l; do vm_note "kernel: $l"; done
    umount "$DIR"
else
    check powercut-fsync-survives false
fi

# --- Camera: vivid HDMI output -> HDMI capture loop --------------------------------------------
if check vivid-setup vm_load_vivid; then
    check v4l2-loop "$BIN" v4l2-loop --output "$VM_VIVID_OUT" --capture "$VM_VIVID_CAP" --input 1
    # Negative control: with vivid's loop off the capture shows its own test pattern, and the
    # same check must fail.
    v4l2-ctl -d "$VM_VIVID_CAP" --set-ctrl=loop_video=0
    check v4l2-loop-needs-loop vm_expect_fail "$BIN" v4l2-loop --output "$VM_VIVID_OUT" \
        --capture "$VM_VIVID_CAP" --input 1 --timeout 3
else
    check v4l2-loop false
fi

# --- USB: FunctionFS device <-> libusb host on dummy_hcd, with hotplug through udevd -----------
usb_checks() {
    vm_load_usb_gadget_stack || return 1
    vm_ffs_gadget_create kiosk 0x1209 0x4b41 || return 1
    "$BIN" usb-ffs-device --ffs /dev/ffs-kiosk --seconds 120 >/run/ffs.log 2>&1 &
    FFS_PID=$!
    vm_wait_for_line /run/ffs.log READY 30 || { cat /run/ffs.log; return 1; }
    vm_start_udevd || return 1
    "$BIN" usb-hotplug --vid 0x1209 --pid 0x4b41 --timeout 60 >/run/hotplug.log 2>&1 &
    HP_PID=$!
    vm_wait_for_line /run/hotplug.log READY 30 || { cat /run/hotplug.log; return 1; }
    vm_ffs_bind kiosk || return 1
    check usb-host "$BIN" usb-host --vid 0x1209 --pid 0x4b41 --count 200
    # Negative control: expecting another prefix, every response must be a mismatch.
    check usb-host-checks-echo vm_expect_fail "$BIN" usb-host --vid 0x1209 --pid 0x4b41 --count 3 --prefix LOOP:
    vm_wait_for_line /run/hotplug.log ARRIVED 15
    vm_ffs_unbind kiosk
    hotplug_result() {
        wait "$HP_PID"
        rc=$?
        cat /run/hotplug.log
        return "$rc"
    }
    check usb-hotplug hotplug_result
    kill "$FFS_PID" 2>/dev/null
    wait "$FFS_PID"
    cat /run/ffs.log
    ffs_result() {
        grep -q '^READY' /run/ffs.log && grep -q '^EVENT ENABLE' /run/ffs.log &&
            grep '^STOP' /run/ffs.log | grep -qv ' 0 echoes' || return 1
        echo "OK usb-ffs-device: $(grep '^STOP' /run/ffs.log | sed 's/^[^:]*: //'), events: $(grep '^EVENT' /run/ffs.log | cut -d' ' -f2 | tr '\n' ' ')"
    }
    check usb-ffs-device ffs_result
}
usb_checks || check usb-setup false

# --- Network: only the forwarded port of the host's loopback is reachable ----------------------
tcp_echo() { # ADDR PORT TEXT: connect, send a line, print the reply
    timeout 8 bash -c 'exec 3<>"/dev/tcp/$1/$2" || exit 1; printf "%s\n" "$3" >&3; IFS= read -r r <&3; printf "%s\n" "$r"' _ "$@"
}
tcp_connects() { # ADDR PORT: exit 0 if a TCP connection is established within 4 s
    timeout 4 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$1" "$2" 2>/dev/null
}
if vm_net_up; then
    net_forward() {
        reply=$(tcp_echo "${GUEST_FWD%:*}" "${GUEST_FWD#*:}" "ping-$TOKEN")
        [ "$reply" = "ping-$TOKEN" ] && echo "OK net-forward: $GUEST_FWD echoed ping-$TOKEN through the host loopback" && return 0
        echo "FAIL net-forward: reply '$reply'"
        return 1
    }
    check net-forward net_forward
    net_isolated() {
        ok=0
        # The echo server's real port, through the slirp host alias: reachable only if restrict
        # were off.
        if tcp_connects 10.0.2.2 "$ECHO_HOSTPORT"; then echo "10.0.2.2:$ECHO_HOSTPORT reachable"; ok=1; fi
        # A port of the forward address that is not forwarded.
        if tcp_connects 10.0.2.100 7001; then echo "10.0.2.100:7001 reachable"; ok=1; fi
        [ "$ok" = 0 ] && echo "OK net-isolated: 10.0.2.2:$ECHO_HOSTPORT and 10.0.2.100:7001 unreachable" && return 0
        echo "FAIL net-isolated: the guest reached an address it must not"
        return 1
    }
    check net-isolated net_isolated
else
    check net-forward false
fi

exit "$failed"
