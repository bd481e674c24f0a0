#!/usr/bin/env bash
# dev-pki.sh OUTDIR [DEVICE_ID ...]
#
# Creates a development PKI for kiosk-agent <-> kiosk-central mutual TLS (EC P-256, SHA-256):
#   OUTDIR/ca.pem, ca.key                 dev CA
#   OUTDIR/server.pem, server.key         CN=localhost, SAN DNS:localhost, IP:127.0.0.1, serverAuth
#   OUTDIR/devices/<id>.pem, <id>.key     CN=<id>, clientAuth, one per DEVICE_ID (default kiosk-dev-0001)
#   OUTDIR/other-ca.pem, other-ca.key     an unrelated CA, for negative tests
#   OUTDIR/devices/rogue.pem, rogue.key   signed by the other CA, CN = the first DEVICE_ID
#                                         (same identity, wrong issuer: must be refused)
# Idempotent: an existing file is never regenerated. Keys are mode 0600.
# Development only: no passphrases, no revocation, 825-day validity.
set -euo pipefail

usage() {
    echo "usage: $0 OUTDIR [DEVICE_ID ...]" >&2
    echo "  DEVICE_ID: 1-64 characters of [A-Za-z0-9._-] (default: kiosk-dev-0001)" >&2
    exit 2
}

[[ $# -ge 1 ]] || usage
[[ "$1" != "-h" && "$1" != "--help" ]] || usage
command -v openssl >/dev/null || { echo "dev-pki: openssl not found" >&2; exit 1; }

OUT=$1
shift
if [[ $# -eq 0 ]]; then
    set -- kiosk-dev-0001
fi
for id in "$@"; do
    if [[ ! "$id" =~ ^[A-Za-z0-9._-]{1,64}$ || "$id" == "rogue" ]]; then
        echo "dev-pki: invalid device id '$id' (1-64 of [A-Za-z0-9._-], not 'rogue')" >&2
        exit 2
    fi
done

DAYS=825
mkdir -p "$OUT/devices"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

made=()
kept=()

# new_key PATH: an EC P-256 private key (PKCS#8 PEM), mode 0600, unless PATH exists.
new_key() {
    local path=$1
    if [[ -e "$path" ]]; then
        kept+=("$path")
        return
    fi
    (umask 077 && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$path" 2>/dev/null)
    chmod 600 "$path"
    made+=("$path")
}

# new_ca NAME CN: NAME.key + self-signed NAME.pem.
new_ca() {
    local name=$1 cn=$2
    new_key "$OUT/$name.key"
    if [[ -e "$OUT/$name.pem" ]]; then
        kept+=("$OUT/$name.pem")
        return
    fi
    openssl req -x509 -new -sha256 -days "$DAYS" \
        -key "$OUT/$name.key" -subj "/O=kiosk-agent development/CN=$cn" \
        -addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -addext "subjectKeyIdentifier=hash" \
        -out "$OUT/$name.pem"
    made+=("$OUT/$name.pem")
}

# new_leaf KEY CERT CN CA_NAME EXTENSIONS: a key and a certificate signed by CA_NAME.
new_leaf() {
    local key=$1 cert=$2 cn=$3 ca=$4 extensions=$5
    new_key "$key"
    if [[ -e "$cert" ]]; then
        kept+=("$cert")
        return
    fi
    printf '%s\n' "$extensions" >"$TMP/ext.cnf"
    openssl req -new -sha256 -key "$key" -subj "/O=kiosk-agent development/CN=$cn" -out "$TMP/leaf.csr"
    openssl x509 -req -sha256 -days "$DAYS" -in "$TMP/leaf.csr" \
        -CA "$OUT/$ca.pem" -CAkey "$OUT/$ca.key" -set_serial "0x$(openssl rand -hex 16)" \
        -extfile "$TMP/ext.cnf" -out "$cert" 2>/dev/null
    made+=("$cert")
}

CLIENT_EXT="basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid"

new_ca ca "kiosk-agent dev CA"
new_leaf "$OUT/server.key" "$OUT/server.pem" localhost ca "basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=DNS:localhost,IP:127.0.0.1
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid"
for id in "$@"; do
    new_leaf "$OUT/devices/$id.key" "$OUT/devices/$id.pem" "$id" ca "$CLIENT_EXT"
done

new_ca other-ca "kiosk-agent OTHER dev CA (untrusted)"
new_leaf "$OUT/devices/rogue.key" "$OUT/devices/rogue.pem" "$1" other-ca "$CLIENT_EXT"

# Sanity: everything chains to the CA it should (a mismatch means files from different runs).
status=0
certs=("$OUT/server.pem")
for id in "$@"; do
    certs+=("$OUT/devices/$id.pem")
done
for cert in "${certs[@]}"; do
    if ! openssl verify -CAfile "$OUT/ca.pem" "$cert" >/dev/null 2>&1; then
        echo "dev-pki: WARNING: $cert does not verify against $OUT/ca.pem" >&2
        status=1
    fi
done
if ! openssl verify -CAfile "$OUT/other-ca.pem" "$OUT/devices/rogue.pem" >/dev/null 2>&1; then
    echo "dev-pki: WARNING: $OUT/devices/rogue.pem does not verify against $OUT/other-ca.pem" >&2
    status=1
fi

for path in "${made[@]}"; do
    echo "created $path"
done
for path in "${kept[@]}"; do
    echo "kept    $path"
done
exit "$status"
