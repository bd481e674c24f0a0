#!/usr/bin/env bash
# Prints, as C lines for sandbox-exec.c's DENY_HEADER, the syscalls kiosk-agent.service denies:
# `SystemCallFilter=~@privileged @resources` minus @chown (allowed back), groups expanded with
# this host's systemd-analyze; names this architecture lacks are skipped by #ifdef.
set -euo pipefail
expand() { # GROUP...: syscall names, nested groups expanded
    systemd-analyze syscall-filter "$@" | awk 'NR > 0 && /^    / {print $1}' | while read -r s; do
        case "$s" in @*) expand "$s" ;; *) echo "$s" ;; esac
    done
}
chown_set=$(expand @chown | sort -u)
expand @privileged @resources | sort -u | grep -vxF -f <(printf '%s\n' "$chown_set") |
    while read -r s; do printf '#ifdef __NR_%s\n__NR_%s,\n#endif\n' "$s" "$s"; done
