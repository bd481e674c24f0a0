#!/usr/bin/env bash
# make deb: the kiosk's Debian package, built with dpkg-deb from a release build
# (--static-swift-stdlib: no Swift runtime on the kiosk; the C libraries come from Debian).
#   Provisioning/deb.sh [OUTDIR]        (default: .build/deb)
# Environment: DEB_VERSION (default 0.1.0~git<date>.<commit>), SKIP_BUILD=1 (package the
# binaries already in .build/release), DEB_BIN_DIR (take the binaries from there instead).
# Layout (Debian 12): /usr/bin/{kiosk-agent,kioskctl}, /lib/systemd/system/kiosk-*.service,
# /usr/lib/sysusers.d + tmpfiles.d/kiosk-agent.conf, /lib/udev/rules.d/70-kiosk-agent.rules,
# /lib/udev/rules.d/71-kiosk-enrol-media.rules, /usr/lib/kiosk-agent/enrol-from-media,
# /etc/kiosk-agent/agent.toml (conffile), /usr/share/kiosk-agent/{profiles,scanners,cameras}/*.json, consent/*.txt,
# /usr/share/doc/kiosk-agent/. Maintainer scripts: Provisioning/debian/.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
OUT=${1:-$REPO/.build/deb}
SWIFT=${SWIFT:-swift}
PRODUCTS=(kiosk-agent kioskctl)
t0=$(date +%s)
if [ "${SKIP_BUILD:-0}" != 1 ]; then
    for p in "${PRODUCTS[@]}"; do
        "$SWIFT" build -c release --static-swift-stdlib --product "$p"
    done
fi
t1=$(date +%s)
BIN=${DEB_BIN_DIR:-$("$SWIFT" build -c release --show-bin-path)}
ARCH=$(dpkg --print-architecture)
VERSION=${DEB_VERSION:-0.1.0~git$(git log -1 --format=%cd --date=format:%Y%m%d).$(git rev-parse --short=7 HEAD)}
PKG=kiosk-agent
# A placeholder until the fleet has a packaging contact (lintian refuses @localhost).
MAINTAINER=${DEB_MAINTAINER:-kiosk-agent builders <kiosk-agent@example.com>}
ST=$(mktemp -d "${TMPDIR:-/tmp}/kiosk-deb.XXXXXX")
trap 'rm -rf "$ST"' EXIT
chmod 0755 "$ST"
umask 022

install -d "$ST/DEBIAN" "$ST/usr/bin" "$ST/lib/systemd/system" "$ST/usr/lib/sysusers.d" "$ST/usr/lib/tmpfiles.d" \
    "$ST/lib/udev/rules.d" "$ST/etc/kiosk-agent" "$ST/usr/share/kiosk-agent/profiles" "$ST/usr/share/doc/$PKG"
for p in "${PRODUCTS[@]}"; do
    install -m 0755 "$BIN/$p" "$ST/usr/bin/$p"
    strip --strip-unneeded --remove-section=.comment --remove-section=.note "$ST/usr/bin/$p"
done
install -m 0644 systemd/kiosk-agent.service systemd/kiosk-screen.service systemd/kiosk-firstboot.service \
    systemd/kiosk-enrol-media@.service "$ST/lib/systemd/system/"
install -d "$ST/usr/lib/kiosk-agent"
install -m 0755 Provisioning/enrol-from-media.sh "$ST/usr/lib/kiosk-agent/enrol-from-media"
install -m 0644 systemd/sysusers.d/kiosk-agent.conf "$ST/usr/lib/sysusers.d/kiosk-agent.conf"
install -m 0644 systemd/tmpfiles.d/kiosk-agent.conf "$ST/usr/lib/tmpfiles.d/kiosk-agent.conf"
install -m 0644 Devices/udev/70-kiosk-agent.rules Devices/udev/71-kiosk-enrol-media.rules \
    Devices/udev/72-kiosk-agent-scanners.rules "$ST/lib/udev/rules.d/"
install -m 0644 Provisioning/agent.toml "$ST/etc/kiosk-agent/agent.toml"
install -m 0644 Devices/profiles/*.json "$ST/usr/share/kiosk-agent/profiles/"
install -d "$ST/usr/share/kiosk-agent/scanners" "$ST/usr/share/kiosk-agent/cameras"
install -m 0644 Devices/scanners/*.json "$ST/usr/share/kiosk-agent/scanners/"
install -m 0644 Devices/cameras/*.json "$ST/usr/share/kiosk-agent/cameras/"
# The shopper's screen: consent texts per language (screen.consent_dir's default).
install -d "$ST/usr/share/kiosk-agent/consent"
install -m 0644 Provisioning/consent/*.txt "$ST/usr/share/kiosk-agent/consent/"
install -m 0644 README.md "$ST/usr/share/doc/$PKG/README.md"
install -m 0644 systemd/README.md "$ST/usr/share/doc/$PKG/systemd.md"
# Man pages: kiosk-agent.8 by hand; kioskctl.1 from swift-argument-parser's help dump.
install -d "$ST/usr/share/man/man1" "$ST/usr/share/man/man8"
gzip -9n <Provisioning/kiosk-agent.8 >"$ST/usr/share/man/man8/kiosk-agent.8.gz"
"$BIN/kioskctl" --experimental-dump-help | python3 Provisioning/manpage.py "$VERSION" | gzip -9n >"$ST/usr/share/man/man1/kioskctl.1.gz"
chmod 0644 "$ST"/usr/share/man/man*/*.gz
cat >"$ST/usr/share/doc/$PKG/copyright" <<COPY
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: kiosk-agent
Comment: Built from the kiosk-agent repository with Provisioning/deb.sh. The binaries link
 the Swift standard library, Foundation and the SwiftPM dependencies statically; their
 licences (Apache-2.0, MIT) are those of the packages listed in Package.resolved.

Files: *
Copyright: 2026 the kiosk-agent authors
License: proprietary
 Not for redistribution outside the kiosk fleet.
COPY
printf '%s (%s) unstable; urgency=medium\n\n  * Built from commit %s.\n\n -- %s  %s\n' \
    "$PKG" "$VERSION" "$(git rev-parse HEAD)" "$MAINTAINER" "$(date -R -d "@$(git log -1 --format=%ct)")" |
    gzip -9n >"$ST/usr/share/doc/$PKG/changelog.gz"  # native package: changelog.gz

# Depends: the shared libraries the binaries need, from dpkg-shlibdeps (needs a debian/control).
SH=$(mktemp -d "${TMPDIR:-/tmp}/kiosk-shlibs.XXXXXX")
mkdir "$SH/debian"
printf 'Source: %s\n\nPackage: %s\nArchitecture: any\n' "$PKG" "$PKG" >"$SH/debian/control"
DEPS=$(cd "$SH" && dpkg-shlibdeps -O "${PRODUCTS[@]/#/$ST/usr/bin/}" 2>/dev/null | sed -n 's/^shlibs:Depends=//p')
rm -rf "$SH"
[ -n "$DEPS" ] || { echo "deb: dpkg-shlibdeps found no dependencies" >&2; exit 1; }

cp Provisioning/debian/postinst Provisioning/debian/prerm Provisioning/debian/postrm "$ST/DEBIAN/"
chmod 0755 "$ST/DEBIAN/postinst" "$ST/DEBIAN/prerm" "$ST/DEBIAN/postrm"
echo /etc/kiosk-agent/agent.toml >"$ST/DEBIAN/conffiles"
SIZE=$(du -sk --exclude=DEBIAN "$ST" | cut -f1)
cat >"$ST/DEBIAN/control" <<CTRL
Package: $PKG
Version: $VERSION
Architecture: $ARCH
Maintainer: $MAINTAINER
Installed-Size: $SIZE
Depends: $DEPS, systemd (>= 252), udev
Suggests: cage, chromium
Section: misc
Priority: optional
Homepage: https://kiosk-agent.invalid/
Description: credit-at-checkout kiosk agent (terminal, camera, outbox, sync)
 kiosk-agent drives a credit-at-checkout kiosk: the USB payment terminal, the
 camera liveness check, a durable outbox of credit applications and their
 sync to kiosk-central. kioskctl is its operator CLI. Ships hardened systemd
 units (agent, kiosk screen, first-boot enrolment), sysusers/tmpfiles
 configuration and udev rules for the terminal and camera nodes.
CTRL
mkdir -p "$OUT"
DEB=$OUT/${PKG}_${VERSION}_${ARCH}.deb
dpkg-deb --root-owner-group -Zxz --build "$ST" "$DEB" >/dev/null
t2=$(date +%s)
ln -sf "$(basename "$DEB")" "$OUT/kiosk-agent.deb"
echo "deb: $DEB ($(du -h "$DEB" | cut -f1), installed $((SIZE / 1024)) MiB); release build $((t1 - t0)) s, packaging $((t2 - t1)) s"
echo "deb: Depends: $DEPS"
