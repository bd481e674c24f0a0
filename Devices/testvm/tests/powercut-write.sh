#!/bin/sh
# Guest, boot 1 of the self-test: write to the state disk, then the host cuts the power.
# Usage: powercut-write.sh TOKEN   (run.sh --disk IMG --mkdisk SIZE --kill-on TESTVM-POWERCUT-NOW)
# Writes TOKEN to synced (fsync'd file and directory) and to unsynced (no sync), then prints the
# marker; run.sh SIGKILLs qemu on it. Exits 3 if the power cut never comes.
. "$TESTVM_LIB"
TOKEN=${1:?token}
DIR=/var/lib/kiosk-agent
vm_mount_state_disk "$DIR" || exit 1
printf '%s\n' "$TOKEN" | dd of="$DIR/synced" conv=fsync status=none || exit 1
sync "$DIR" || exit 1 # coreutils: fsync(2) on the directory, so the new entry is durable too
printf '%s\n' "$TOKEN" >"$DIR/unsynced" || exit 1
vm_log "wrote synced (fsync'd) and unsynced files; cutting power"
echo "TESTVM-POWERCUT-NOW"
sleep 60
vm_log "ERROR: still running 60 s after the power-cut marker"
exit 3
