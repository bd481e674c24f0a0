#!/bin/sh
# enrol-from-media DEVICE: mount DEVICE read-only, copy kiosk-enrol.env from its root to
# /etc/kiosk-agent/enrol.env (0600 root), unmount. Run by kiosk-enrol-media@.service
# (installed as /usr/lib/kiosk-agent/enrol-from-media). KIOSK_ETC overrides /etc/kiosk-agent
# (tests). Exit 0 when copied, 1 when the medium has no enrolment file, 2 on an error.
set -eu
dev=${1:?usage: enrol-from-media DEVICE}
etc=${KIOSK_ETC:-/etc/kiosk-agent}
mnt=$(mktemp -d /tmp/kiosk-enrol.XXXXXX)
cleanup() { umount "$mnt" 2>/dev/null || true; rmdir "$mnt" 2>/dev/null || true; }
trap cleanup EXIT
mount -o ro,nosuid,nodev,noexec "$dev" "$mnt" || { echo "enrol-from-media: cannot mount $dev" >&2; exit 2; }
src=$mnt/kiosk-enrol.env
if [ ! -f "$src" ] || [ -L "$src" ]; then
    echo "enrol-from-media: no kiosk-enrol.env on $dev" >&2
    exit 1
fi
# At most 64 KiB, KEY=VALUE lines only: the file is data, never sourced by a shell here.
size=$(wc -c <"$src")
[ "$size" -le 65536 ] || { echo "enrol-from-media: kiosk-enrol.env is $size bytes" >&2; exit 2; }
if grep -qvE '^([A-Z][A-Z0-9_]*=.*|#.*|)$' "$src"; then
    echo "enrol-from-media: kiosk-enrol.env has lines that are not KEY=VALUE" >&2
    exit 2
fi
umask 077
mkdir -p "$etc"
tmp=$(mktemp "$etc/.enrol.env.XXXXXX")
cat "$src" >"$tmp"
chmod 0600 "$tmp"
mv -f "$tmp" "$etc/enrol.env"
echo "enrol-from-media: $dev -> $etc/enrol.env"
