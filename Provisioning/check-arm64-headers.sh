#!/bin/sh
# Compiles the C shims' headers for aarch64 Linux (clang --target=aarch64-linux-gnu against
# Debian's arm64 cross headers), so the _Static_assert layout checks of the V4L2, FunctionFS and
# USB structs the Swift code relies on are proven for the production boards too.
# Needs libc6-dev-arm64-cross and linux-libc-dev-arm64-cross (apt); exits 0 with a note without them.
set -eu
cd "$(dirname "$0")/.."
cross=/usr/aarch64-linux-gnu/include
if [ ! -f "$cross/linux/videodev2.h" ]; then
    echo "check-arm64-headers: no arm64 cross headers ($cross); apt-get install libc6-dev-arm64-cross linux-libc-dev-arm64-cross"
    exit 0
fi
clang=$(command -v clang || echo /opt/swift/usr/bin/clang)
resource=$("$clang" -print-resource-dir)/include
for h in ka_sys.h ka_usb.h ka_v4l2.h; do
    # The arm64 libc and kernel headers first; /usr/include only for libusb.h and libv4l2.h.
    "$clang" --target=aarch64-linux-gnu -fsyntax-only -x c -nostdinc -isystem "$resource" -isystem "$cross" \
        -idirafter /usr/include -ISources/CKioskShims/include "Sources/CKioskShims/include/$h"
    echo "check-arm64-headers: $h OK for aarch64 (layout asserts hold)"
done
