# Devices/chaos/lib.sh: helpers sourced by the host-side chaos scenarios (powercut.sh, network.sh,
# devices.sh, soak.sh);
# not run on its own. The caller has cd'ed to the repository root.

# chaos_binaries NAME DEST [EXTRA...]: sets BIN to the folder holding kiosk-agent, kioskctl,
# kiosk-central and the EXTRA binaries (e.g. terminal-emulator for the VM scenarios).
# With CHAOS_BIN set, that folder as it is (no build: e.g. a prebuilt snapshot); otherwise
# `swift build` (log in .cache/chaos/NAME-build.log) and a snapshot of .build/debug in DEST,
# so that a long run does not pick up a rebuild halfway.
chaos_binaries() {
    local name=$1 dest=$2
    shift 2
    local wanted=(kiosk-agent kioskctl kiosk-central "$@")
    if [ -n "${CHAOS_BIN:-}" ]; then
        BIN=$(cd "$CHAOS_BIN" && pwd) || { echo "$name: CHAOS_BIN=$CHAOS_BIN is not a folder" >&2; return 1; }
        local b
        for b in "${wanted[@]}"; do
            [ -x "$BIN/$b" ] || { echo "$name: no $b in CHAOS_BIN=$BIN" >&2; return 1; }
        done
        return 0
    fi
    mkdir -p .cache/chaos
    swift build >".cache/chaos/$name-build.log" 2>&1 ||
        { tail -n 30 ".cache/chaos/$name-build.log" >&2; echo "$name: build failed" >&2; return 1; }
    mkdir -p "$dest" &&
        cp -a "${wanted[@]/#/.build/debug/}" .build/debug/*.resources "$dest/" ||
        { echo "$name: cannot snapshot the binaries" >&2; return 1; }
    BIN=$(cd "$dest" && pwd)
}

# wait_file PATH: waits (at most 10 s) until PATH exists and is not empty.
wait_file() { for _ in $(seq 100); do [ -s "$1" ] && return 0; sleep 0.1; done; return 1; }

# chaos_central NAME WORK [SERVE OPTIONS...]: starts kiosk-central from $BIN on 127.0.0.1 with the
# dev PKI in WORK/pki and its database in WORK/central.sqlite (log WORK/central.log); sets
# CENTRAL (its pid) and PORT. Returns 1, with the log, when it does not come up.
chaos_central() {
    local name=$1 work=$2
    shift 2
    "$BIN/kiosk-central" serve --listen 127.0.0.1:0 --port-file "$work/central.port" --cert "$work/pki/server.pem" \
        --key "$work/pki/server.key" --ca "$work/pki/ca.pem" --db "$work/central.sqlite" "$@" 2>"$work/central.log" &
    CENTRAL=$!
    wait_file "$work/central.port" || { cat "$work/central.log" >&2; echo "$name: kiosk-central did not start" >&2; return 1; }
    PORT=$(cat "$work/central.port")
}

# What a leak shows first, read from /proc (empty when the process is gone).
proc_rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null; }
proc_threads() { awk '/^Threads:/ {print $2}' "/proc/$1/status" 2>/dev/null; }
proc_cpu_ms() { # user + system CPU time so far
    awk -v hz="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); printf "%d\n", ($12 + $13) * 1000 / hz }' "/proc/$1/stat" 2>/dev/null
}
proc_fds() { [ -d "/proc/$1/fd" ] && ls "/proc/$1/fd" 2>/dev/null | wc -l; }

# file_bytes PATH: the file's size in bytes, 0 when it does not exist (e.g. no -wal yet).
file_bytes() { stat -c %s "$1" 2>/dev/null || echo 0; }
