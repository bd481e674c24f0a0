#!/bin/sh
# Guest: the Camera module on the kernel's vivid driver through libv4l2 (kioskctl camera ...).
#
#   swift build --product kioskctl                  # on the host, first
#   Devices/testvm/run.sh --timeout 300 -- Devices/testvm/tests/camera-vivid.sh [KIOSKCTL]
#   (or Devices/testvm/tests/camera-vivid-vm.sh: build, boot, print the results)
#
# Checks (PASS/FAIL lines in $VM_RESULTS):
#   camera-list        `camera list --json` finds vivid's capture node by identity card@bus_info
#   camera-feed-loop   `camera feed` writes a known RGB frame to vivid's HDMI output (V4L2Output);
#                      a snapshot of the HDMI capture input (input 1) is byte-identical to it
#   camera-loop-differs negative control: that snapshot differs from another frame
#   camera-snapshot    `camera snapshot` (profile camera-vivid: webcam input 0, YUYV 640x480):
#                      a valid binary PPM of the negotiated size
#   camera-test        `camera test --frames 60 --json`: 60 frames, fps reported
#   camera-unplug      `camera supervise`: vivid unbound from its driver during capture (a real
#                      unplug: video_unregister_device) -> typed error, status "camera
#                      unavailable", no crash; rmmod + modprobe vivid -> reopened, frames again
. "$TESTVM_LIB"
REPO=${TESTVM_REPO:-$(pwd)}
KC=${1:-$REPO/.build/debug/kioskctl}
PROFILES=$REPO/Devices/cameras
failed=0
check() { vm_check "$@" || failed=1; }
[ -x "$KC" ] || { vm_log "no kioskctl binary $KC (swift build --product kioskctl)"; exit 1; }
VIVID_OPTS="n_devs=1 node_types=0x101 num_inputs=2 input_types=0x0c num_outputs=1 output_types=0x01"

vm_load_vivid || exit 1
ID=vivid@platform:vivid-000

# --- list -------------------------------------------------------------------------------------
camera_list() {
    out=$("$KC" camera list --json) || { echo "FAIL camera-list: exit $?"; return 1; }
    echo "$out"
    case "$out" in *"\"$ID\""*) ;; *) echo "FAIL camera-list: $ID not listed"; return 1 ;; esac
    echo "OK camera-list: $ID found ($("$KC" camera list | tr '\n' ' '))"
}
check camera-list camera_list

# --- feed vivid's HDMI output, capture it back on input 1 --------------------------------------
mkdir -p /run/feed /run/other
python3 - <<'PY'
w, h = 640, 480
def ppm(path, f):
    px = bytearray()
    for y in range(h):
        for x in range(w):
            px += bytes(f(x, y))
    open(path, "wb").write(b"P6\n%d %d\n255\n" % (w, h) + px)
ppm("/run/feed/face-000.ppm", lambda x, y: ((x * 3 + y) & 255, (x ^ y) & 255, (y * 5) & 255))
ppm("/run/other/other-000.ppm", lambda x, y: ((x + y) & 255, 0, 0))
PY
feed_loop() {
    "$KC" camera feed /run/feed --device "$VM_VIVID_OUT" --seconds 15 >/run/feed.log 2>&1 &
    fpid=$!
    vm_wait_for_line /run/feed.log "streaming to" 60 || { cat /run/feed.log; echo "FAIL camera-feed-loop: feed did not start"; return 1; }
    "$KC" camera snapshot --device "$ID" --profile "$REPO/Devices/testvm/cameras/camera-vivid-hdmi-loop.json" --skip 10 --out /run/loop.ppm || {
        echo "FAIL camera-feed-loop: snapshot failed"; kill $fpid; return 1; }
    kill $fpid 2>/dev/null
    wait $fpid
    cat /run/feed.log
    if cmp -s /run/loop.ppm /run/feed/face-000.ppm; then
        echo "OK camera-feed-loop: the HDMI capture is byte-identical to the frame fed to $VM_VIVID_OUT"
    else
        echo "FAIL camera-feed-loop: captured frame differs from the fed one ($(cmp /run/loop.ppm /run/feed/face-000.ppm 2>&1 | head -1))"
        return 1
    fi
}
check camera-feed-loop feed_loop
check camera-loop-differs vm_expect_fail cmp -s /run/loop.ppm /run/other/other-000.ppm

# --- snapshot and test with the vivid profile (webcam input 0, YUYV) ---------------------------
snapshot() {
    "$KC" camera snapshot --profiles "$PROFILES" --device "$ID" --out /run/snap.ppm || { echo "FAIL camera-snapshot: exit $?"; return 1; }
    head -c 15 /run/snap.ppm | od -c | head -2
    hdr=$(head -c 15 /run/snap.ppm | tr '\n' ' ')
    size=$(stat -c %s /run/snap.ppm)
    [ "$hdr" = "P6 640 480 255 " ] || { echo "FAIL camera-snapshot: header '$hdr'"; return 1; }
    [ "$size" = $((15 + 640 * 480 * 3)) ] || { echo "FAIL camera-snapshot: $size bytes"; return 1; }
    echo "OK camera-snapshot: /run/snap.ppm P6 640x480, $size bytes"
}
check camera-snapshot snapshot
cp /run/snap.ppm /work-share/snapshot-vivid.ppm 2>/dev/null

camera_test() {
    "$KC" camera test --profiles "$PROFILES" --device "$ID" --frames 60 --json >/run/test.json || { cat /run/test.json; echo "FAIL camera-test: exit $?"; return 1; }
    cat /run/test.json
    frames=$(sed -n 's/.*"frames" : \([0-9]*\).*/\1/p' /run/test.json)
    fps=$(sed -n 's/.*"fps" : \([0-9.]*\).*/\1/p' /run/test.json)
    cfps=$(sed -n 's/.*"capture_fps" : \([0-9.]*\).*/\1/p' /run/test.json)
    [ "$frames" = 60 ] || { echo "FAIL camera-test: frames '$frames'"; return 1; }
    echo "OK camera-test: 60 frames, $fps fps at the consumer, $cfps fps on the capture thread (YUYV 640x480 via libv4l2)"
}
check camera-test camera_test

# --- unplug during capture, then the camera returns --------------------------------------------
unplug() {
    "$KC" camera supervise --profiles "$PROFILES" --device "$ID" --retry-ms 500 --seconds 90 --expect-reopen >/run/sup.log 2>&1 &
    spid=$!
    vm_wait_for_line /run/sup.log "status: camera ok" 40 || { cat /run/sup.log; echo "FAIL camera-unplug: never streamed"; kill $spid; return 1; }
    $VM_BB usleep 500000
    if rmmod vivid 2>/run/rmmod.err; then
        vm_log "rmmod vivid during capture succeeded"
    else
        vm_log "rmmod vivid during capture refused ($(cat /run/rmmod.err)): unbinding the driver instead"
        echo vivid.0 >/sys/bus/platform/drivers/vivid/unbind || { echo "FAIL camera-unplug: unbind"; kill $spid; return 1; }
    fi
    vm_wait_for_line /run/sup.log "camera unavailable" 20 || { cat /run/sup.log; echo "FAIL camera-unplug: no unavailable status"; kill $spid; return 1; }
    kill -0 $spid 2>/dev/null || { cat /run/sup.log; echo "FAIL camera-unplug: kioskctl died"; return 1; }
    $VM_BB usleep 1500000  # a few failed reopen attempts (camera not found)
    lsmod | grep -q '^vivid ' && { rmmod vivid || { echo "FAIL camera-unplug: rmmod after unbind"; kill $spid; return 1; }; }
    # shellcheck disable=SC2086
    modprobe vivid $VIVID_OPTS || { echo "FAIL camera-unplug: modprobe vivid"; kill $spid; return 1; }
    wait $spid
    rc=$?
    cat /run/sup.log
    [ "$rc" = 0 ] || { echo "FAIL camera-unplug: supervise exit $rc"; return 1; }
    grep -q "camera unavailable: .*VIDIOC_DQBUF\|camera unavailable: .*POLLERR\|camera unavailable: .*failed: E" /run/sup.log ||
        { echo "FAIL camera-unplug: the unavailable reason names no ioctl/errno"; return 1; }
    echo "OK camera-unplug: $(grep -m1 'camera unavailable' /run/sup.log | sed 's/.*status: //'); $(tail -n 1 /run/sup.log | sed 's/^OK camera-supervise: //')"
}
check camera-unplug unplug

vm_log "results:"
cat "$VM_RESULTS"
exit "$failed"
