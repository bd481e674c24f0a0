#!/usr/bin/env bash
# Installs the Debian packages kiosk-agent needs to build, test, demo and benchmark — only
# those missing, with one `apt-get update` first. Safe to run again (a no-op when all are there).
set -euo pipefail
PKGS=(
  pkg-config libsqlite3-dev sqlite3 libcurl4-openssl-dev curl openssl
  libusb-1.0-0-dev libv4l-dev v4l-utils usbutils
  qemu-system-x86 busybox-static kmod e2fsprogs cpio xz-utils zstd socat
  # The shopper's screen browser tests (make test-browser): headless Chromium, CJK fonts.
  chromium chromium-driver python3-selenium python3-pytest fonts-noto-cjk
  opencv-data python3-opencv python3-pip facedetect
  systemd dpkg-dev
)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "deps: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
command -v swift >/dev/null || { echo "deps: the Swift toolchain (swift) is not on PATH; install Swift 6.x first" >&2; exit 1; }
