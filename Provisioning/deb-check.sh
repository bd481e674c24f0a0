#!/usr/bin/env bash
# make deb-check: sanity of the package make deb built (never part of make test: it needs the
# release build).
#   Provisioning/deb-check.sh [DEB]     (default: .build/deb/kiosk-agent.deb)
#   1. dpkg-deb --info/--contents: control fields, conffiles, every expected path and mode;
#   2. lintian (installed with apt-get if missing): no error (warnings are printed, not fatal);
#   3. install, upgrade (same package again), remove and purge in a scratch root
#      (dpkg --root, maintainer scripts chrootless with DPKG_ROOT): users and directories
#      after install, config mode 0640 root:kiosk-agent, conffile kept on remove, state
#      directory kept on remove and purge, nothing of ours left on the filesystem but that.
set -uo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DEB=$(readlink -f "${1:-$REPO/.build/deb/kiosk-agent.deb}")
[ -f "$DEB" ] || { echo "deb-check: no $DEB (make deb first)" >&2; exit 1; }
failed=0
pass() { echo "PASS $*"; }
fail() { echo "FAIL $*"; failed=1; }
R=$(mktemp -d /tmp/kiosk-deb-root.XXXXXX)
trap 'rm -rf "$R"' EXIT

# --- 1. contents ---
info=$(dpkg-deb --info "$DEB")
for f in Package Version Architecture Depends Description; do
    grep -q "^ $f: " <<<"$info" || fail "control field $f missing"
done
grep -q '^ Depends: .*libcurl' <<<"$info" && pass "control (Depends: $(sed -n 's/^ Depends: //p' <<<"$info"))" || fail "Depends lacks libcurl"
[ "$(dpkg-deb --ctrl-tarfile "$DEB" | tar -xO ./conffiles)" = /etc/kiosk-agent/agent.toml ] && pass conffiles || fail conffiles
contents=$(dpkg-deb --contents "$DEB" | awk '{print $1, $2, $6}')
want=(
    "-rwxr-xr-x root/root ./usr/bin/kiosk-agent" "-rwxr-xr-x root/root ./usr/bin/kioskctl"
    "-rw-r--r-- root/root ./lib/systemd/system/kiosk-agent.service"
    "-rw-r--r-- root/root ./lib/systemd/system/kiosk-screen.service"
    "-rw-r--r-- root/root ./lib/systemd/system/kiosk-firstboot.service"
    "-rw-r--r-- root/root ./lib/systemd/system/kiosk-enrol-media@.service"
    "-rw-r--r-- root/root ./lib/udev/rules.d/71-kiosk-enrol-media.rules"
    "-rw-r--r-- root/root ./lib/udev/rules.d/72-kiosk-agent-scanners.rules"
    "-rw-r--r-- root/root ./usr/share/kiosk-agent/scanners/test-hid-scanner.json"
    "-rw-r--r-- root/root ./usr/share/kiosk-agent/cameras/camera-uvc-generic.json"
    "-rw-r--r-- root/root ./usr/share/kiosk-agent/consent/instalment-consent.zh-Hans.txt"
    "-rw-r--r-- root/root ./usr/share/kiosk-agent/consent/instalment-consent.en.txt"
    "-rwxr-xr-x root/root ./usr/lib/kiosk-agent/enrol-from-media"
    "-rw-r--r-- root/root ./usr/lib/sysusers.d/kiosk-agent.conf" "-rw-r--r-- root/root ./usr/lib/tmpfiles.d/kiosk-agent.conf"
    "-rw-r--r-- root/root ./lib/udev/rules.d/70-kiosk-agent.rules" "-rw-r--r-- root/root ./etc/kiosk-agent/agent.toml"
    "-rw-r--r-- root/root ./usr/share/kiosk-agent/profiles/kiosk-emulated-terminal.json"
    "-rw-r--r-- root/root ./usr/share/doc/kiosk-agent/copyright"
    "-rw-r--r-- root/root ./usr/share/man/man8/kiosk-agent.8.gz" "-rw-r--r-- root/root ./usr/share/man/man1/kioskctl.1.gz"
)
miss=0
for w in "${want[@]}"; do grep -qxF -- "$w" <<<"$contents" || { fail "contents: no '$w'"; miss=1; }; done
[ "$miss" = 0 ] && pass "contents ($(grep -c . <<<"$contents") entries, $(du -h "$DEB" | cut -f1))"
BINS=$(mktemp -d /tmp/kiosk-deb-bins.XXXXXX)
for b in kiosk-agent kioskctl; do
    dpkg-deb --fsys-tarfile "$DEB" | tar -xO "./usr/bin/$b" >"$BINS/$b" && chmod +x "$BINS/$b"
    if ldd "$BINS/$b" | grep -q 'libswift'; then fail "$b links a shared Swift runtime"; else pass "$b: no shared Swift runtime"; fi
done
"$BINS/kiosk-agent" --help 2>&1 | grep -q 'usage: kiosk-agent' && pass "kiosk-agent --help runs" || fail "kiosk-agent --help"
"$BINS/kioskctl" --help >/dev/null 2>&1 && pass "kioskctl --help runs" || fail "kioskctl --help"

# The packaged agent under two of its unit's seccomp settings without a running systemd
# (systemd/sandbox-exec.c): MemoryDenyWriteExecute's filter and the deny-list
# `~@privileged @resources` (minus @chown; EPERM, as SystemCallErrorNumber=EPERM). It must
# start, send READY=1 over NOTIFY_SOCKET, and stop on SIGTERM with STOPPING=1 and exit 0; with
# strace installed, the denied calls it made are listed. Negative controls: a W+X mmap and
# setpriority() are refused under the same launcher.
sandboxed() {
    local R
    R=$(mktemp -d /tmp/kiosk-deb-sandbox.XXXXXX)
    mv "$BINS/kiosk-agent" "$R/"
    "$REPO/systemd/denylist.sh" >"$R/denied.h" || { echo "denylist.sh failed"; return 1; }
    cc -O2 -DDENY_HEADER="\"$R/denied.h\"" -o "$R/sandbox-exec" "$REPO/systemd/sandbox-exec.c" ||
        { echo "cannot compile sandbox-exec"; return 1; }
    "$R/sandbox-exec" python3 -c 'import mmap; mmap.mmap(-1, 4096, prot=7)' 2>/dev/null &&
        { echo "filter inactive: W+X mmap allowed"; return 1; }
    "$R/sandbox-exec" python3 -c 'import os; os.setpriority(os.PRIO_PROCESS, 0, 5)' 2>/dev/null &&
        { echo "deny-list inactive: setpriority allowed"; return 1; }
    local tracer=() names
    if command -v strace >/dev/null; then
        names=$(sed -n 's/^__NR_\(.*\),$/?\1/p' "$R/denied.h" | tr '\n' ',' | sed 's/,$//')
        tracer=(strace -f -qq -o "$R/denied.trace" -e "trace=$names")
    fi
    mkdir -p "$R/agent-state" "$R/agent-run"
    socat -u "UNIX-RECV:$R/notify" "CREATE:$R/notify.log" &
    local sp=$! i
    for i in $(seq 50); do [ -S "$R/notify" ] && break; sleep 0.1; done
    # The shipped config with sync off (no device key before provisioning: the agent would
    # stop with 78, EX_CONFIG) and the state and socket in the temp dir.
    NOTIFY_SOCKET=$R/notify KIOSK_AGENT_AGENT_STATE_DIR=$R/agent-state KIOSK_AGENT_CONTROL_SOCKET=$R/agent-run/control.sock \
        KIOSK_AGENT_SYNC_KEY_FILE= KIOSK_AGENT_SYNC_CERT_FILE= KIOSK_AGENT_SYNC_CA_FILE= \
        "${tracer[@]}" "$R/sandbox-exec" "$R/kiosk-agent" --config "$REPO/Provisioning/agent.toml" >"$R/agent.log" 2>&1 &
    local ap=$! t0=$SECONDS
    while ! grep -q 'READY=1' "$R/notify.log" 2>/dev/null && kill -0 "$ap" 2>/dev/null && [ $((SECONDS - t0)) -lt 30 ]; do sleep 0.2; done
    local ready=$((SECONDS - t0))
    sleep 1 # a second of running after READY (the sync and watchdog loops start)
    local agent=$ap
    [ ${#tracer[@]} -eq 0 ] || agent=$(pgrep -P "$ap" | head -n 1)
    kill -TERM "${agent:-$ap}" 2>/dev/null; wait "$ap"; local rc=$?
    sleep 0.3; kill "$sp" 2>/dev/null; wait "$sp" 2>/dev/null
    if grep -q 'READY=1' "$R/notify.log" && grep -q 'STOPPING=1' "$R/notify.log" && [ "$rc" -eq 0 ]; then
        local hits=none
        [ -s "$R/denied.trace" ] && hits=$(grep -o '^[0-9]* *[a-z_0-9]*(' "$R/denied.trace" | sed 's/^[0-9]* *//; s/($//' | sort | uniq -c | awk '{printf "%s%s x%s", sep, $2, $1; sep=", "}')
        echo "$(grep -c . "$R/denied.h" | awk '{print int($1 / 3)}') syscalls denied; READY=1 in ${ready} s, STOPPING=1, exit 0; denied calls made: ${hits}"
    else
        echo "rc $rc; notify: $(tr '\n' ' ' <"$R/notify.log" 2>/dev/null)"; tail -n 20 "$R/agent.log"; rm -rf "$R"; return 1
    fi
    rm -rf "$R"
}
if out=$(sandboxed 2>&1); then pass "kiosk-agent under MemoryDenyWriteExecute + ~@privileged @resources: $out"
else fail "kiosk-agent under MemoryDenyWriteExecute + ~@privileged @resources:"; sed 's/^/    /' <<<"$out"; fi
rm -rf "$BINS"

# --- 2. lintian ---
if ! command -v lintian >/dev/null; then
    echo "deb-check: installing lintian"
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get install -y -qq --no-install-recommends lintian >/dev/null 2>&1 ||
        { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends lintian >/dev/null; }
fi
if command -v lintian >/dev/null; then
    lout=$(lintian --tag-display-limit 0 "$DEB" 2>&1)
    ne=$(grep -c '^E: ' <<<"$lout"); nw=$(grep -c '^W: ' <<<"$lout")
    sed 's/^/    /' <<<"$lout"
    [ "$ne" -eq 0 ] && pass "lintian: 0 errors, $nw warnings" || fail "lintian: $ne errors, $nw warnings"
else fail "lintian not installable"; fi

# --- 3. install / upgrade / remove / purge in a scratch root ---
mkdir -p "$R/var/lib/dpkg/info" "$R/var/lib/dpkg/updates" "$R/var/lib/dpkg/triggers" "$R/etc" "$R/var/log"
: >"$R/var/lib/dpkg/status"
: >"$R/var/lib/dpkg/available"
DPKG=(dpkg --root="$R" --log="$R/var/log/dpkg.log" --force-script-chrootless --force-depends --force-not-root)
step() { # NAME DPKG-ARGS...
    local name=$1; shift
    local out
    if out=$("${DPKG[@]}" "$@" 2>&1); then pass "dpkg $name"; else fail "dpkg $name"; sed 's/^/    /' <<<"$out"; fi
}
step install -i "$DEB"
if grep -q '^kiosk-agent:' "$R/etc/passwd" 2>/dev/null; then
    uid=$(awk -F: '$1=="kiosk-agent"{print $3}' "$R/etc/passwd"); gid=$(awk -F: '$1=="kiosk-agent"{print $3}' "$R/etc/group")
    got=$(stat -c '%n %a %u:%g' "$R/var/lib/kiosk-agent" "$R/etc/kiosk-agent" "$R/etc/kiosk-agent/agent.toml" | sed "s|^$R||" | tr '\n' ';')
    want="/var/lib/kiosk-agent 700 $uid:$gid;/etc/kiosk-agent 750 0:$gid;/etc/kiosk-agent/agent.toml 640 0:$gid;"
    [ "$got" = "$want" ] && pass "installed: $got" || fail "installed: got '$got' want '$want'"
else fail "install: no kiosk-agent user in the scratch root"; fi
[ -L "$R/etc/systemd/system/multi-user.target.wants/kiosk-firstboot.service" ] && pass "kiosk-firstboot enabled" || fail "kiosk-firstboot not enabled"
echo "state" >"$R/var/lib/kiosk-agent/outbox.sqlite" 2>/dev/null
echo "# local edit" >>"$R/etc/kiosk-agent/agent.toml"
step upgrade -i "$DEB"
grep -q '# local edit' "$R/etc/kiosk-agent/agent.toml" && pass "upgrade keeps the edited config" || fail "upgrade lost the config edit"
step remove -r kiosk-agent
[ -f "$R/etc/kiosk-agent/agent.toml" ] && [ -f "$R/var/lib/kiosk-agent/outbox.sqlite" ] && [ ! -e "$R/usr/bin/kiosk-agent" ] &&
    pass "remove: binaries gone, config and state kept" || fail "remove: unexpected layout"
step purge -P kiosk-agent
left=$(cd "$R" && find . -path ./var/lib/dpkg -prune -o -path ./var/log -prune -o \( -type f -o -type l \) -print |
    grep -Ev '^\./etc/(passwd|group|shadow|gshadow|\.pwd\.lock)-?$' | sort | tr '\n' ' ')
[ "$left" = "./var/lib/kiosk-agent/outbox.sqlite " ] && pass "purge: only the state directory is left" || fail "purge left: $left"

[ "$failed" -eq 0 ] && echo "deb-check: all checks passed" || echo "deb-check: FAILED"
exit "$failed"
