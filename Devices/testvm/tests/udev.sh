#!/bin/sh
# Guest: Devices/udev/70-kiosk-agent.rules on a real systemd-udevd and the kernel's own drivers
# (vivid for cameras, dummy_hcd + a configfs SourceSink gadget for the USB terminal: no
# user-space device program, so no Swift build is needed). The user and group come from
# systemd/sysusers.d/kiosk-agent.conf, as on a kiosk.
#   Devices/testvm/run.sh --timeout 120 -- Devices/testvm/tests/udev.sh   (or tests/udev-vm.sh)
#
# Checks (PASS/FAIL lines in $VM_RESULTS; exit status non-zero on any failure):
#   sysusers          systemd-sysusers creates kiosk-agent / kiosk-screen
#   camera-nodes      /dev/kiosk/camera-platform-vivid.0-index{0,1} -> /dev/video{0,1},
#                     crw-rw---- group kiosk-agent
#   camera-access     the kiosk-agent user opens the camera (v4l2-ctl --info); nobody cannot
#   terminal-other    a USB device with other ids (1209:0001) gets no link and keeps root's group
#   terminal-node     1209:4b41 serial UDEV-TEST-0001: /dev/kiosk/terminal-UDEV-TEST-0001 -> its
#                     usbfs node, crw-rw---- kiosk-agent; the kiosk-agent user reads its
#                     descriptors, nobody cannot
#   terminal-unplug   the link disappears when the gadget is unbound
#   scanner-node      the same gadget as 1209:5343 (test-hid-scanner's ids):
#                     /dev/kiosk/scanner-UDEV-TEST-0001 -> its usbfs node, crw-rw---- kiosk-agent
#   enrol-media       with a disk labelled KIOSK-ENROL (udev-vm.sh makes one): 71-kiosk-enrol-media
#                     tags it for systemd with SYSTEMD_WANTS=kiosk-enrol-media@vda.service, and
#                     Provisioning/enrol-from-media.sh copies its kiosk-enrol.env (0600, same bytes)
. "$TESTVM_LIB"
REPO=${TESTVM_REPO:-$(pwd)}
SERIAL=UDEV-TEST-0001
G=/sys/kernel/config/usb_gadget/udevtest
failed=0
check() { vm_check "$@" || failed=1; }

wait_for() { # TEST-ARGS...: poll up to 10 s (udev's event comes after enumeration)
    _n=100
    while ! test "$@" && [ "$_n" -gt 0 ]; do $VM_BB usleep 100000; _n=$((_n - 1)); done
    udevadm settle --timeout=10
    test "$@"
}
node_is() { # LINK WANT-PERMS: the link resolves to a device node with these perms and group
    [ -L "$1" ] || { echo "FAIL: no $1 ($(ls -l /dev/kiosk 2>&1 | tr '\n' ' '))"; return 1; }
    _node=$(readlink -f "$1")
    _perms=$(stat -c '%A %G' "$_node")
    [ "$_perms" = "$2" ] || { echo "FAIL: $1 -> $_node is '$_perms', want '$2'"; return 1; }
    echo "OK $1 -> $_node ($_perms)"
}
as_user() { # USER CMD...: run CMD as USER with only that user's primary group
    _user=$1
    shift
    setpriv --reuid="$_user" --regid="$(id -g "$_user")" --clear-groups -- "$@"
}

# --- users, rules, udevd ---------------------------------------------------------------------
sysusers() {
    systemd-sysusers "$REPO/systemd/sysusers.d/kiosk-agent.conf" || return 1
    getent passwd kiosk-agent && getent group kiosk-agent && getent passwd kiosk-screen
}
check sysusers sysusers
mkdir -p /etc/udev/rules.d
cp "$REPO/Devices/udev/70-kiosk-agent.rules" "$REPO/Devices/udev/71-kiosk-enrol-media.rules" \
    "$REPO/Devices/udev/72-kiosk-agent-scanners.rules" /etc/udev/rules.d/ || exit 1
vm_start_udevd || exit 1

# --- cameras: vivid (capture /dev/video0, output /dev/video1) ---------------------------------
modprobe vivid n_devs=1 node_types=0x101 num_inputs=1 input_types=0x00 num_outputs=1 output_types=0x01 ||
    { vm_log "modprobe vivid"; exit 1; }
camera_nodes() {
    wait_for -L /dev/kiosk/camera-platform-vivid.0-index1
    node_is /dev/kiosk/camera-platform-vivid.0-index0 "crw-rw---- kiosk-agent" || return 1
    node_is /dev/kiosk/camera-platform-vivid.0-index1 "crw-rw---- kiosk-agent" || return 1
    [ "$(readlink -f /dev/kiosk/camera-platform-vivid.0-index0)" = /dev/video0 ] || { echo "FAIL: index0 is not video0"; return 1; }
}
check camera-nodes camera_nodes
camera_access() {
    as_user kiosk-agent v4l2-ctl -d /dev/kiosk/camera-platform-vivid.0-index0 --info >/dev/null ||
        { echo "FAIL: kiosk-agent cannot open the camera"; return 1; }
    if as_user nobody v4l2-ctl -d /dev/kiosk/camera-platform-vivid.0-index0 --info >/dev/null 2>&1; then
        echo "FAIL: nobody opened the camera"; return 1
    fi
    echo "OK kiosk-agent opens the camera, nobody cannot"
}
check camera-access camera_access

# --- USB terminal: a SourceSink gadget on dummy_hcd, ids set per plug --------------------------
vm_load_usb_gadget_stack || exit 1
modprobe usb_f_ss_lb || { vm_log "modprobe usb_f_ss_lb"; exit 1; }
mkdir "$G" "$G/strings/0x409" "$G/configs/c.1" "$G/functions/SourceSink.1" || exit 1
echo 0x0200 >"$G/bcdUSB"
echo kiosk-agent >"$G/strings/0x409/manufacturer"
echo "udev test terminal" >"$G/strings/0x409/product"
echo "$SERIAL" >"$G/strings/0x409/serialnumber"
echo 100 >"$G/configs/c.1/MaxPower"
ln -s "$G/functions/SourceSink.1" "$G/configs/c.1/" || exit 1
UDC=$(ls /sys/class/udc | head -n 1)
plug() { # VID PID: bind the gadget with these ids; prints the host-side usbfs node
    echo "$1" >"$G/idVendor"
    echo "$2" >"$G/idProduct"
    echo "$UDC" >"$G/UDC" || return 1
    _v=${1#0x}
    _p=${2#0x}
    _n=100
    while [ "$_n" -gt 0 ]; do
        for _d in /sys/bus/usb/devices/*; do
            [ "$(cat "$_d/idVendor" 2>/dev/null)" = "$_v" ] && [ "$(cat "$_d/idProduct" 2>/dev/null)" = "$_p" ] &&
                { udevadm settle --timeout=10; printf '/dev/bus/usb/%03d/%03d\n' "$(cat "$_d/busnum")" "$(cat "$_d/devnum")"; return 0; }
        done
        $VM_BB usleep 100000
        _n=$((_n - 1))
    done
    return 1
}
unplug() { echo "" >"$G/UDC"; udevadm settle --timeout=10; }

terminal_other() {
    node=$(plug 0x1209 0x0001) || { echo "FAIL: 1209:0001 did not enumerate"; return 1; }
    perms=$(stat -c '%A %G' "$node")
    links=$(ls /dev/kiosk 2>/dev/null | grep '^terminal-')
    unplug
    [ -z "$links" ] || { echo "FAIL: links for another device: $links"; return 1; }
    [ "$perms" = "crw-rw-r-- root" ] || { echo "FAIL: $node is '$perms'"; return 1; }
    echo "OK 1209:0001 at $node: $perms, no /dev/kiosk/terminal-*"
}
check terminal-other terminal_other

LINK=/dev/kiosk/terminal-$SERIAL
terminal_node() {
    node=$(plug 0x1209 0x4b41) || { echo "FAIL: 1209:4b41 did not enumerate"; return 1; }
    wait_for -L "$LINK"
    node_is "$LINK" "crw-rw---- kiosk-agent" || return 1
    [ "$(readlink -f "$LINK")" = "$node" ] || { echo "FAIL: $LINK is not $node"; return 1; }
    # usbfs: reading the node returns the device descriptor (18 bytes, bLength 0x12, type 1).
    desc=$(as_user kiosk-agent head -c 2 "$LINK" | od -An -tx1 | tr -d ' ') ||
        { echo "FAIL: kiosk-agent cannot read $LINK"; return 1; }
    [ "$desc" = 1201 ] || { echo "FAIL: descriptor starts '$desc'"; return 1; }
    if as_user nobody head -c 2 "$LINK" >/dev/null 2>&1; then echo "FAIL: nobody read $LINK"; return 1; fi
    echo "OK kiosk-agent reads the device descriptor through $LINK, nobody cannot"
}
check terminal-node terminal_node
terminal_unplug() {
    unplug
    wait_for ! -e "$LINK"
    [ ! -e "$LINK" ] && [ ! -L "$LINK" ] || { echo "FAIL: $LINK still there after unplug"; return 1; }
    echo "OK $LINK removed on unplug"
}
check terminal-unplug terminal_unplug

scanner_node() {
    node=$(plug 0x1209 0x5343) || { echo "FAIL: 1209:5343 did not enumerate"; return 1; }
    link=/dev/kiosk/scanner-$SERIAL
    wait_for -L "$link"
    node_is "$link" "crw-rw---- kiosk-agent" || { unplug; return 1; }
    [ "$(readlink -f "$link")" = "$node" ] || { echo "FAIL: $link is not $node"; unplug; return 1; }
    [ ! -e "$LINK" ] || { echo "FAIL: the scanner also got $LINK"; unplug; return 1; }
    unplug
}
check scanner-node scanner_node

# --- enrolment medium (a disk labelled KIOSK-ENROL on /dev/vda, when udev-vm.sh attached one) --
enrol_media() {
    props=$(udevadm info --query=property /dev/vda) || { echo "FAIL: no /dev/vda"; return 1; }
    echo "$props" | grep -qx 'ID_FS_LABEL=KIOSK-ENROL' || { echo "FAIL: /dev/vda is not labelled KIOSK-ENROL"; return 1; }
    echo "$props" | grep -qx 'SYSTEMD_WANTS=kiosk-enrol-media@vda.service' ||
        { echo "FAIL: no SYSTEMD_WANTS: $(echo "$props" | grep -E 'SYSTEMD|TAGS' | tr '\n' ' ')"; return 1; }
    echo "$props" | grep -q '^TAGS=.*:systemd:' || { echo "FAIL: not tagged systemd"; return 1; }
    modprobe ext4
    KIOSK_ETC=/run/kiosk-etc "$REPO/Provisioning/enrol-from-media.sh" /dev/vda || { echo "FAIL: enrol-from-media"; return 1; }
    cmp /run/kiosk-etc/enrol.env "$ENROL_SAMPLE" || { echo "FAIL: copied file differs"; return 1; }
    perms=$(stat -c '%a %U' /run/kiosk-etc/enrol.env)
    [ "$perms" = "600 root" ] || { echo "FAIL: enrol.env is '$perms'"; return 1; }
    grep -q ' /tmp/kiosk-enrol' /proc/mounts && { echo "FAIL: medium still mounted"; return 1; }
    echo "OK /dev/vda (KIOSK-ENROL) wants kiosk-enrol-media@vda.service; enrol.env copied 0600 root, unmounted"
}
ENROL_SAMPLE=${2:-}
if [ -n "$ENROL_SAMPLE" ]; then check enrol-media enrol_media; fi

vm_log "udev checks done: failed=$failed"
exit "$failed"
