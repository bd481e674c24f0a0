#!/usr/bin/env bash
# Devices/testvm/setup.sh: idempotent set-up of the kiosk-agent test VM.
#
# - installs the host packages it needs (apt-get) when missing;
# - resolves Debian's current kernel through linux-image-amd64's dependency, downloads that
#   linux-image-*-amd64 .deb and the udev .deb (apt-get download) into .cache/testvm/debs and
#   unpacks them (dpkg -x), never installing them;
# - extracts an uncompressed vmlinux from the vmlinuz (qemu boots it by its PVH entry);
# - builds a small uncompressed initramfs: busybox-static, the early modules (resolved with
#   modprobe --show-depends against the unpacked tree) and guest/init;
# - writes .cache/testvm/current.env, which run.sh reads.
# Everything is cached under .cache/testvm keyed by kernel/udev version and by the hash of the
# initramfs inputs; a second run only checks stamps (well under a second).
#
# Usage: setup.sh [--quiet] [--force]
#   TESTVM_CACHE overrides the cache folder (default: <repo>/.cache/testvm).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
CACHE=${TESTVM_CACHE:-$REPO/.cache/testvm}
QUIET=0
FORCE=0
for a in "$@"; do
    case "$a" in
    --quiet) QUIET=1 ;;
    --force) FORCE=1 ;;
    -h | --help) sed -n '2,19p' "$0"; exit 0 ;;
    *) echo "setup.sh: unknown option $a" >&2; exit 2 ;;
    esac
done

log() { [ "$QUIET" = 1 ] || echo "testvm-setup: $*" >&2; }
fail() { echo "testvm-setup: ERROR: $*" >&2; exit 1; }

# Host packages: the VM (qemu, busybox, kmod, cpio, e2fsprogs), the kernel unpacking (xz, zstd),
# the guest-side tools that run from the host's / (v4l-utils, usbutils, python3), the net relay
# (socat) and the libraries vm-selfcheck builds against (libv4l, libusb, libcurl for CKioskShims).
HOST_PACKAGES=(qemu-system-x86 busybox-static kmod cpio e2fsprogs xz-utils zstd socat
    v4l-utils libv4l-dev libusb-1.0-0-dev usbutils libcurl4-openssl-dev pkg-config python3 binutils)

# Modules /init loads before it can reach the root: virtio PCI, 9p over virtio, overlayfs, plus
# the virtio disk and NIC so /dev/vda and eth0 exist. Everything else is modprobe'd in the guest
# from the unpacked tree, which /init binds at /lib/modules/<kver>.
EARLY_MODULES=(virtio_pci 9pnet_virtio 9p overlay virtio_blk virtio_net)
# Modules the guest helpers need; checked here so a Debian change fails set-up, not a test.
GUEST_MODULES=(ext4 vivid dummy_hcd libcomposite usb_f_fs usb_f_ss_lb configfs)

ensure_host_packages() {
    local missing=() installed p
    # One dpkg-query for all (unknown packages print nothing on stdout).
    installed=" $(dpkg-query -W -f='${db:Status-Abbrev}${Package} \n' "${HOST_PACKAGES[@]}" 2>/dev/null |
        awk '$1 == "ii" {print $2}' | tr '\n' ' ') "
    for p in "${HOST_PACKAGES[@]}"; do
        [[ "$installed" == *" $p "* ]] || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    log "installing host packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y --no-install-recommends "${missing[@]}" >&2; then
        apt-get update >&2
        apt-get install -y --no-install-recommends "${missing[@]}" >&2
    fi
}

# apt's view changes only when its lists do: cache the (slow, ~1.5 s) apt-cache answer keyed by
# the lists' modification time.
lists_stamp() { stat -c %Y /var/lib/apt/lists 2>/dev/null || echo 0; }

resolve_versions() {
    local stamp out dep
    stamp=$(lists_stamp)
    if [ "$FORCE" = 0 ] && [ -f "$CACHE/resolved.env" ]; then
        # shellcheck disable=SC1091
        . "$CACHE/resolved.env"
        [ "${RESOLVED_LISTS_STAMP:-}" = "$stamp" ] && return 0
    fi
    out=$(apt-cache show --no-all-versions linux-image-amd64 2>/dev/null || true)
    if [ -z "$out" ]; then
        log "apt lists have no linux-image-amd64: running apt-get update"
        apt-get update >&2
        stamp=$(lists_stamp)
        out=$(apt-cache show --no-all-versions linux-image-amd64)
    fi
    # "Depends: linux-image-6.1.0-56-amd64 (= 6.1.192-2)"
    dep=$(sed -n 's/^Depends: *//p' <<<"$out" | tr ',' '\n' | grep -o 'linux-image-[^ ]*-amd64 *([^)]*)' | head -1)
    KPKG=$(sed 's/ .*//' <<<"$dep")
    KDEBVER=$(sed -n 's/.*(= *\([^)]*\)).*/\1/p' <<<"$dep")
    [ -n "$KPKG" ] && [ -n "$KDEBVER" ] || fail "cannot resolve linux-image-amd64's kernel package (got '$dep')"
    UDEVVER=$(apt-cache show --no-all-versions udev | sed -n 's/^Version: *//p' | head -1)
    [ -n "$UDEVVER" ] || fail "cannot resolve udev's version"
    mkdir -p "$CACHE"
    cat >"$CACHE/resolved.env.tmp" <<EOF
RESOLVED_LISTS_STAMP=$stamp
KPKG=$KPKG
KDEBVER=$KDEBVER
UDEVVER=$UDEVVER
EOF
    mv "$CACHE/resolved.env.tmp" "$CACHE/resolved.env"
    log "resolved $KPKG $KDEBVER, udev $UDEVVER"
}

deb_file() { # deb_file PKG VERSION -> path in debs/ (apt encodes ':' in versions as %3a)
    local v=${2//:/%3a}
    echo "$CACHE/debs/${1}_${v}_amd64.deb"
}

try_download() { # try_download PKG VERSION: apt-get download into debs/ unless present
    local f
    f=$(deb_file "$1" "$2")
    [ -s "$f" ] && return 0
    mkdir -p "$CACHE/debs"
    log "downloading $1 $2"
    # apt-get download writes into the current directory; its "unsandboxed" note is harmless.
    (cd "$CACHE/debs" && apt-get download "$1=$2" 2>&1 | grep -v 'unsandboxed' >&2) || true
    [ -s "$f" ]
}

# Downloads the kernel and udev .debs that are not unpacked yet. If a version has left the
# archive (stale apt lists, e.g. after a security update), refresh the lists, resolve again
# and retry once.
fetch_debs() {
    local attempt
    for attempt in 1 2; do
        if { [ -f "$CACHE/kernel/${KPKG}_${KDEBVER}/.unpacked" ] || try_download "$KPKG" "$KDEBVER"; } &&
            { [ -f "$CACHE/udev/$UDEVVER/.unpacked" ] || try_download udev "$UDEVVER"; }; then
            return 0
        fi
        [ "$attempt" = 1 ] || break
        log "download failed: refreshing apt lists and resolving again"
        apt-get update >&2
        FORCE=1 resolve_versions
    done
    fail "cannot download $KPKG $KDEBVER / udev $UDEVVER"
}

# extract_vmlinux VMLINUZ OUT: our own extract-vmlinux. The bzImage is a small decompressor
# followed by the compressed kernel: look for each compression format's magic, decompress from
# every candidate offset, and keep the first output that is an ELF image.
extract_vmlinux() {
    local in=$1 out=$2 name magic cmd off
    local -a formats=(
        'xz|\xfd\x37\x7a\x58\x5a\x00|xz -dc --single-stream'
        'zstd|\x28\xb5\x2f\xfd|zstd -dcq'
        'gzip|\x1f\x8b\x08|gzip -dcq'
        'lz4|\x02\x21\x4c\x18|lz4 -dcq'
        'lzma|\x5d\x00\x00\x00|xz -dc --format=lzma'
        'bzip2|BZh|bzip2 -dcq'
    )
    for f in "${formats[@]}"; do
        IFS='|' read -r name magic cmd <<<"$f"
        command -v "${cmd%% *}" >/dev/null || continue
        while read -r off; do
            [ -n "$off" ] || continue
            tail -c +"$((off + 1))" "$in" | $cmd >"$out.tmp" 2>/dev/null || true
            if [ "$(head -c 4 "$out.tmp" | od -An -tx1 | tr -d ' \n')" = 7f454c46 ] &&
                readelf -h "$out.tmp" >/dev/null 2>&1; then
                mv "$out.tmp" "$out"
                log "vmlinux: $name stream at offset $off of $(basename "$in")"
                return 0
            fi
        done < <(LC_ALL=C grep -obUaP "$magic" "$in" 2>/dev/null | cut -d: -f1 | head -20)
    done
    rm -f "$out.tmp"
    fail "no compressed ELF kernel found in $in"
}

prepare_kernel() {
    KDIR=$CACHE/kernel/${KPKG}_${KDEBVER}
    local deb
    deb=$(deb_file "$KPKG" "$KDEBVER")
    if [ ! -f "$KDIR/.unpacked" ]; then
        log "unpacking $(basename "$deb")"
        rm -rf "$KDIR"
        mkdir -p "$KDIR"
        dpkg -x "$deb" "$KDIR/root"
        touch "$KDIR/.unpacked"
    fi
    KVER=$(ls "$KDIR/root/lib/modules" | head -1)
    [ -n "$KVER" ] || fail "no module tree in $deb"
    MODDIR=$KDIR/root/lib/modules/$KVER
    if [ ! -f "$MODDIR/modules.dep" ]; then
        log "depmod $KVER"
        depmod -b "$KDIR/root" "$KVER"
    fi
    VMLINUX=$KDIR/vmlinux
    [ -s "$VMLINUX" ] || extract_vmlinux "$KDIR/root/boot/vmlinuz-$KVER" "$VMLINUX"
}

prepare_udev() {
    UDEVROOT=$CACHE/udev/$UDEVVER/root
    if [ ! -f "$CACHE/udev/$UDEVVER/.unpacked" ]; then
        log "unpacking udev $UDEVVER"
        rm -rf "$CACHE/udev/$UDEVVER"
        mkdir -p "$CACHE/udev/$UDEVVER"
        dpkg -x "$(deb_file udev "$UDEVVER")" "$UDEVROOT"
        touch "$CACHE/udev/$UDEVVER/.unpacked"
    fi
}

module_paths() { # module_paths MOD... -> .ko paths in load order, each once
    local m
    for m in "$@"; do
        modprobe --show-depends -d "$KDIR/root" -S "$KVER" "$m" ||
            fail "module $m not in $KPKG"
    done | awk '$1 == "insmod" && !seen[$2]++ { print $2 }'
}

build_initramfs() {
    local key tmp p
    # The initramfs depends on the kernel, the early module list, /init and busybox.
    key=$( {
        echo "$KVER ${EARLY_MODULES[*]}"
        cat "$HERE/guest/init" /bin/busybox
    } | sha256sum | cut -c1-16)
    INITRD=$KDIR/initramfs-$key.cpio
    [ -s "$INITRD" ] && return 0
    log "building initramfs ($key)"
    module_paths "${GUEST_MODULES[@]}" >/dev/null
    tmp=$(mktemp -d "$CACHE/initramfs.XXXXXX")
    mkdir -p "$tmp"/{bin,dev,proc,sys,mnt,newroot,modules}
    cp /bin/busybox "$tmp/bin/busybox"
    install -m 0755 "$HERE/guest/init" "$tmp/init"
    mknod -m 0600 "$tmp/dev/console" c 5 1 2>/dev/null || true
    : >"$tmp/modules/load.list"
    while read -r p; do
        cp "$p" "$tmp/modules/"
        basename "$p" >>"$tmp/modules/load.list"
    done < <(module_paths "${EARLY_MODULES[@]}")
    (cd "$tmp" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) >"$INITRD.tmp"
    rm -rf "$tmp"
    mv "$INITRD.tmp" "$INITRD"
    # Older initramfs builds of this kernel are stale now.
    find "$KDIR" -maxdepth 1 -name 'initramfs-*.cpio' ! -path "$INITRD" -delete
}

prune_old() { # keep only the current kernel, udev and their .debs
    local d
    for d in "$CACHE"/kernel/*/; do
        [ "${d%/}" = "$KDIR" ] || { log "removing old $(basename "$d")"; rm -rf "$d"; }
    done
    for d in "$CACHE"/udev/*/; do
        [ "${d%/}" = "$CACHE/udev/$UDEVVER" ] || rm -rf "$d"
    done
    for d in "$CACHE"/debs/*.deb; do
        [ -e "$d" ] || continue
        [ "$d" = "$(deb_file "$KPKG" "$KDEBVER")" ] || [ "$d" = "$(deb_file udev "$UDEVVER")" ] || rm -f "$d"
    done
}

write_current() {
    local new
    new=$(cat <<EOF
TESTVM_KVER=$KVER
TESTVM_VMLINUX=$VMLINUX
TESTVM_INITRD=$INITRD
TESTVM_MODDIR=$MODDIR
TESTVM_UDEVROOT=$UDEVROOT
EOF
)
    if [ "$(cat "$CACHE/current.env" 2>/dev/null)" != "$new" ]; then
        printf '%s\n' "$new" >"$CACHE/current.env.tmp"
        mv "$CACHE/current.env.tmp" "$CACHE/current.env"
        log "ready: kernel $KVER, $(basename "$INITRD")"
    fi
}

main() {
    [ "$(id -u)" = 0 ] || fail "needs root (apt-get, dpkg -x of device nodes, mknod)"
    mkdir -p "$CACHE"
    exec 9>"$CACHE/.lock"
    flock 9
    ensure_host_packages
    resolve_versions
    fetch_debs
    prepare_kernel
    prepare_udev
    build_initramfs
    write_current
    prune_old
}

main
