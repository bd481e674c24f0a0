# shellcheck shell=sh
# kiosk-agent test VM: helpers for scripts that run inside the guest (via run.sh).
# Source it:  . "$TESTVM_LIB"   (run.sh exports TESTVM_LIB, TESTVM_KVER, TESTVM_UDEVROOT,
# TESTVM_BUSYBOX; the guest's / is the host's / under a tmpfs overlay, so host tools and the
# binaries built on the host run here as they are).
#
#   vm_load_vivid                  vivid: /dev/video0 capture (input 1 = HDMI), /dev/video1 HDMI
#                                  output, both 640x480 RGB24 DV timings, Loop Video on, no OSD
#   vm_load_usb_gadget_stack       dummy_hcd + libcomposite + usb_f_fs, configfs mounted
#   vm_ffs_gadget_create NAME VID PID   configfs gadget with one FunctionFS function, mounted at
#                                  /dev/ffs-NAME (write descriptors to its ep0 before binding)
#   vm_ffs_bind NAME / vm_ffs_unbind NAME   plug / unplug the gadget (a free UDC of dummy_hcd)
#   vm_start_udevd                 systemd-udevd from the unpacked udev .deb; trigger + settle
#   vm_mount_state_disk [DIR] [DEV]  mount the ext4 state disk (/dev/vda) at DIR
#                                  (default /var/lib/kiosk-agent)
#   vm_net_up                      virtio NIC up as 10.0.2.15/24, default route via 10.0.2.2
#   vm_wait_for_line FILE TEXT SECONDS   wait until a line of FILE contains TEXT
#   vm_check NAME CMD [ARGS...]    run CMD, append "PASS|FAIL NAME SECONDS [last OK/FAIL line]"
#                                  to $VM_RESULTS (default /work-share/results)
#   vm_expect_fail CMD [ARGS...]  negative control: succeeds (printing an OK line) iff CMD fails
#   vm_note TEXT                   append "INFO TEXT" to $VM_RESULTS (reported, not asserted)
#   vm_log MSG                     timestamped line on the console

VM_BB=${TESTVM_BUSYBOX:-/.testvm/busybox}
VM_VIVID_CAP=
VM_VIVID_OUT=

# Forks cost 35-100 ms each under TCG: the helpers below stay in shell builtins where they can.
vm_uptime_cs() { # uptime in centiseconds
    read -r _up _rest </proc/uptime
    _s=${_up%.*}
    _c=${_up#*.}
    echo $((_s * 100 + 1$_c - 100))
}
vm_log() {
    read -r _up _rest </proc/uptime
    echo "[vm $_up] $*"
}
vm_die() { vm_log "ERROR: $*" >&2; return 1; }

VM_RESULTS=${VM_RESULTS:-/work-share/results}

vm_check() { # NAME CMD [ARGS...]
    _name=$1
    shift
    _out=/run/vm_check.$$.$_name
    _t0=$(vm_uptime_cs)
    "$@" >"$_out" 2>&1
    _rc=$?
    _t1=$(vm_uptime_cs)
    _detail=
    while IFS= read -r _l; do
        echo "$_l"
        case "$_l" in "OK "*:* | "FAIL "*:*) _detail=${_l#*: } ;; esac
    done <"$_out"
    rm -f "$_out"
    _dt=$((_t1 - _t0))
    _dt=$((_dt / 100)).$((_dt / 10 % 10))$((_dt % 10))
    if [ "$_rc" = 0 ]; then _s=PASS; else _s=FAIL; fi
    echo "$_s $_name ${_dt}s${_detail:+ $_detail}" >>"$VM_RESULTS"
    vm_log "$_s $_name (${_dt}s, exit $_rc)"
    return "$_rc"
}

vm_expect_fail() { # CMD [ARGS...]
    "$@"
    _rc=$?
    if [ "$_rc" = 0 ]; then
        echo "FAIL negative control: '$*' succeeded but must fail"
        return 1
    fi
    echo "OK negative control: '$1 ${2:-}' failed as it must (exit $_rc)"
}

vm_note() {
    echo "INFO $*" >>"$VM_RESULTS"
    vm_log "INFO $*"
}

vm_wait_for_line() { # FILE TEXT SECONDS
    _f=$1 _p=$2 _n=$(($3 * 10))
    while [ "$_n" -gt 0 ]; do
        if [ -f "$_f" ]; then
            while IFS= read -r _l; do
                case "$_l" in *"$_p"*) return 0 ;; esac
            done <"$_f"
        fi
        $VM_BB usleep 100000
        _n=$((_n - 1))
    done
    return 1
}

# vivid's HDMI loop (harness notes): the output feeds the capture only HDMI-to-HDMI with the
# same size, fourcc and field, so both ends get 640x480 DV timings and RGB24; OSD text off.
vm_load_vivid() {
    modprobe vivid n_devs=1 node_types=0x101 num_inputs=2 input_types=0x0c \
        num_outputs=1 output_types=0x01 || { vm_die "modprobe vivid"; return 1; }
    for _d in /sys/class/video4linux/video*; do
        case "$(cat "$_d/name")" in
        *vid-cap) VM_VIVID_CAP=/dev/${_d##*/} ;;
        *vid-out) VM_VIVID_OUT=/dev/${_d##*/} ;;
        esac
    done
    [ -c "$VM_VIVID_CAP" ] && [ -c "$VM_VIVID_OUT" ] || { vm_die "vivid nodes missing"; return 1; }
    export VM_VIVID_CAP VM_VIVID_OUT
    v4l2-ctl -d "$VM_VIVID_CAP" --set-input=1 >/dev/null || { vm_die "select HDMI input"; return 1; }
    _vm_set_dv_640x480 "$VM_VIVID_CAP" || return 1
    _vm_set_dv_640x480 "$VM_VIVID_OUT" || return 1
    v4l2-ctl -d "$VM_VIVID_CAP" --set-fmt-video=width=640,height=480,pixelformat=RGB3,field=none ||
        { vm_die "capture format"; return 1; }
    v4l2-ctl -d "$VM_VIVID_OUT" --set-fmt-video-out=width=640,height=480,pixelformat=RGB3,field=none ||
        { vm_die "output format"; return 1; }
    v4l2-ctl -d "$VM_VIVID_CAP" --set-ctrl=loop_video=1,osd_text_mode=2 ||
        { vm_die "loop_video/osd_text_mode controls"; return 1; }
    vm_log "vivid: capture $VM_VIVID_CAP (input 1, HDMI), output $VM_VIVID_OUT, 640x480 RGB24, loop on"
}

_vm_set_dv_640x480() { # DEV: pick the 640x480 progressive entry of the device's DV timings list
    _idx=$(v4l2-ctl -d "$1" --list-dv-timings 2>/dev/null | awk '
        $1 == "Index:" { idx = $2; w = 0 }
        /Active width: 640$/ { w = 1 }
        /Active height: 480$/ && w && idx != "" { print idx; exit }')
    [ -n "$_idx" ] || { vm_die "$1: no 640x480 DV timings"; return 1; }
    v4l2-ctl -d "$1" --set-dv-bt-timings=index="$_idx" >/dev/null || { vm_die "$1: set DV timings"; return 1; }
}

vm_load_usb_gadget_stack() {
    modprobe -a dummy_hcd libcomposite usb_f_fs || { vm_die "modprobe dummy_hcd libcomposite usb_f_fs"; return 1; }
    grep -q ' /sys/kernel/config ' /proc/mounts || mount -t configfs configfs /sys/kernel/config ||
        { vm_die "mount configfs"; return 1; }
    [ -n "$(ls /sys/class/udc 2>/dev/null)" ] || { vm_die "no UDC (dummy_hcd)"; return 1; }
    vm_log "usb gadget stack: UDC $(ls /sys/class/udc | tr '\n' ' ')"
}

vm_ffs_gadget_create() { # NAME VID PID
    _g=/sys/kernel/config/usb_gadget/$1
    mkdir "$_g" || { vm_die "gadget $1 exists?"; return 1; }
    echo "$2" >"$_g/idVendor"
    echo "$3" >"$_g/idProduct"
    echo 0x0200 >"$_g/bcdUSB"
    echo 0x0100 >"$_g/bcdDevice"
    mkdir "$_g/strings/0x409"
    echo kiosk-agent >"$_g/strings/0x409/manufacturer"
    echo "testvm $1" >"$_g/strings/0x409/product"
    echo "TESTVM-$1" >"$_g/strings/0x409/serialnumber"
    mkdir "$_g/configs/c.1" "$_g/configs/c.1/strings/0x409"
    echo "ffs $1" >"$_g/configs/c.1/strings/0x409/configuration"
    echo 100 >"$_g/configs/c.1/MaxPower"
    mkdir "$_g/functions/ffs.$1" || { vm_die "ffs function $1"; return 1; }
    ln -s "$_g/functions/ffs.$1" "$_g/configs/c.1/" || return 1
    mkdir -p "/dev/ffs-$1"
    mount -t functionfs "$1" "/dev/ffs-$1" || { vm_die "mount functionfs $1"; return 1; }
}

vm_ffs_bind() { # NAME: bind to the first UDC no other gadget uses
    _g=/sys/kernel/config/usb_gadget/$1
    for _u in $(ls /sys/class/udc); do
        if ! cat /sys/kernel/config/usb_gadget/*/UDC 2>/dev/null | grep -qx "$_u"; then
            echo "$_u" >"$_g/UDC" || { vm_die "bind $1 to $_u (descriptors written to ep0?)"; return 1; }
            vm_log "gadget $1 bound to $_u"
            return 0
        fi
    done
    vm_die "no free UDC for $1"
}

vm_ffs_unbind() { # NAME: a real unplug
    echo "" >"/sys/kernel/config/usb_gadget/$1/UDC" || { vm_die "unbind $1"; return 1; }
    vm_log "gadget $1 unbound"
}

# udevd from the unpacked udev .deb (the host has no udev): its lib/udev (rules, helpers) is
# bound over /usr/lib/udev, udevadm runs from the unpacked tree (as systemd-udevd through a
# symlink, as Debian installs it). The module-autoloading rule is masked so only what a test
# loads is loaded (VM_UDEV_AUTOLOAD=1 keeps it). Then the daemon starts and add events replay.
vm_start_udevd() {
    _u=$TESTVM_UDEVROOT
    [ -x "$_u/bin/udevadm" ] || { vm_die "no unpacked udev at '$_u'"; return 1; }
    mkdir -p /usr/lib/udev /etc/udev/rules.d /run/udev /run/testvm-udev
    mount --bind "$_u/lib/udev" /usr/lib/udev || { vm_die "bind udev rules"; return 1; }
    cp "$_u/etc/udev/udev.conf" /etc/udev/udev.conf 2>/dev/null || true
    ln -sf "$_u/bin/udevadm" /run/testvm-udev/systemd-udevd
    ln -sf "$_u/bin/udevadm" /run/testvm-udev/udevadm
    PATH=/run/testvm-udev:$PATH
    export PATH
    [ "${VM_UDEV_AUTOLOAD:-0}" = 1 ] || : >/etc/udev/rules.d/80-drivers.rules
    systemd-udevd --daemon || { vm_die "systemd-udevd"; return 1; }
    udevadm trigger --action=add --subsystem-match=usb --subsystem-match=video4linux \
        --subsystem-match=block --subsystem-match=net
    udevadm settle --timeout=30 || { vm_die "udevadm settle"; return 1; }
    vm_log "udevd running"
}

vm_mount_state_disk() { # [DIR] [DEV]
    _dir=${1:-/var/lib/kiosk-agent}
    _dev=${2:-/dev/vda}
    [ -b "$_dev" ] || { vm_die "no state disk $_dev (run.sh --disk)"; return 1; }
    modprobe ext4 || { vm_die "modprobe ext4"; return 1; }
    mkdir -p "$_dir"
    mount -t ext4 "$_dev" "$_dir" || { vm_die "mount $_dev"; return 1; }
    vm_log "state disk $_dev on $_dir"
}

vm_net_up() {
    _if=
    for _n in /sys/class/net/*; do
        [ "$(basename "$(readlink -f "$_n/device/driver" 2>/dev/null)")" = virtio_net ] && _if=${_n##*/}
    done
    [ -n "$_if" ] || { vm_die "no virtio NIC (run.sh --net-forward)"; return 1; }
    $VM_BB ip link set "$_if" up &&
        $VM_BB ip addr add 10.0.2.15/24 dev "$_if" &&
        $VM_BB ip route add default via 10.0.2.2 dev "$_if" || { vm_die "configure $_if"; return 1; }
    vm_log "net: $_if 10.0.2.15/24 via 10.0.2.2"
}
