#!/bin/sh
# Makes the demo's X.509 material with openssl: one CA and one SPIFFE X.509-SVID-style leaf per
# workload (exactly one URI SAN spiffe://<trust domain>/ns/<ns>/sa/<sa>, plus DNS SANs).
#
#   scripts/gen-certs.sh [OUT_DIR]            default OUT_DIR: ./certs
#
# Environment:
#   TRUST_DOMAIN   SPIFFE trust domain                       (default entra-authz.demo)
#   DAYS           leaf and CA validity in days              (default 30)
#   FORCE=1        regenerate even if current certificates are still valid
#   KEEP_CA_KEY=1  keep ca.key (by default it is deleted once the leaves are signed, so the
#                  directory that every container mounts holds no signing key)
#   KEY_OWNERS     "name=uid:gid ..." — when run as root, chown each name.key to that owner and
#                  make it 0400 (docker-compose.yml sets this so each container reads only its key)
#
# Idempotent: when every file exists and no certificate expires within a day, nothing is redone.
# POSIX sh on purpose: it runs in the Dockerfile's alpine `certs` stage and on any host.
set -eu

OUT=${1:-./certs}
TD=${TRUST_DOMAIN:-entra-authz.demo}
DAYS=${DAYS:-30}

# name | SPIFFE path | DNS SANs (comma separated)
IDENTITIES='envoy|ns/edge/sa/envoy|envoy,localhost
entra-authz|ns/authz/sa/entra-authz|entra-authz,localhost
demo-client|ns/demo/sa/demo-client|demo-client
orders|ns/demo/sa/orders|orders,localhost'

command -v openssl >/dev/null 2>&1 || { echo "gen-certs: openssl is required" >&2; exit 1; }
mkdir -p "$OUT"
umask 077

names() { printf '%s\n' "$IDENTITIES" | cut -d'|' -f1; }

up_to_date() {
  [ -f "$OUT/ca.crt" ] || return 1
  openssl x509 -checkend 86400 -noout -in "$OUT/ca.crt" >/dev/null 2>&1 || return 1
  for n in $(names); do
    [ -f "$OUT/$n.crt" ] && [ -f "$OUT/$n.key" ] || return 1
    openssl x509 -checkend 86400 -noout -in "$OUT/$n.crt" >/dev/null 2>&1 || return 1
  done
  grep -q "spiffe://$TD/" "$OUT/trust-domain" 2>/dev/null || return 1
}

apply_owners() {
  [ -n "${KEY_OWNERS:-}" ] || return 0
  if [ "$(id -u)" != "0" ]; then
    echo "gen-certs: not root, KEY_OWNERS ignored" >&2
    return 0
  fi
  for pair in $KEY_OWNERS; do
    n=${pair%%=*}
    owner=${pair#*=}
    [ -f "$OUT/$n.key" ] || { echo "gen-certs: KEY_OWNERS names unknown key $n" >&2; exit 1; }
    chown "$owner" "$OUT/$n.key"
    chmod 0400 "$OUT/$n.key"
  done
}

if [ "${FORCE:-0}" != "1" ] && up_to_date; then
  echo "gen-certs: certificates in $OUT are current (FORCE=1 to regenerate)"
  apply_owners
  exit 0
fi

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
# Earlier runs left read-only files behind: remove rather than overwrite them.
rm -f "$OUT/ca.crt" "$OUT/ca.key" "$OUT/trust-domain"
for n in $(names); do rm -f "$OUT/$n.crt" "$OUT/$n.key"; done

# --- CA -------------------------------------------------------------------------------------
cat >"$WORK/ca.ext" <<EXT
basicConstraints=critical,CA:TRUE,pathlen:0
keyUsage=critical,keyCertSign,cRLSign
subjectKeyIdentifier=hash
EXT
openssl ecparam -name prime256v1 -genkey -noout -out "$WORK/ca.ec.key"
openssl pkcs8 -topk8 -nocrypt -in "$WORK/ca.ec.key" -out "$OUT/ca.key"
openssl req -new -key "$OUT/ca.key" -subj "/O=entra-authz demo/CN=entra-authz demo CA" -out "$WORK/ca.csr"
openssl x509 -req -in "$WORK/ca.csr" -signkey "$OUT/ca.key" -days "$DAYS" \
  -set_serial "0x$(openssl rand -hex 16)" -extfile "$WORK/ca.ext" -out "$OUT/ca.crt" 2>/dev/null

# --- leaves ---------------------------------------------------------------------------------
printf '%s\n' "$IDENTITIES" | while IFS='|' read -r name path dns; do
  san="URI:spiffe://$TD/$path"
  old_ifs=$IFS
  IFS=,
  for d in $dns; do san="$san,DNS:$d"; done
  IFS=$old_ifs
  cat >"$WORK/$name.ext" <<EXT
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyAgreement
extendedKeyUsage=serverAuth,clientAuth
subjectAltName=$san
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid
EXT
  openssl ecparam -name prime256v1 -genkey -noout -out "$WORK/$name.ec.key"
  openssl pkcs8 -topk8 -nocrypt -in "$WORK/$name.ec.key" -out "$OUT/$name.key"
  openssl req -new -key "$OUT/$name.key" -subj "/O=entra-authz demo/CN=$name" -out "$WORK/$name.csr"
  openssl x509 -req -in "$WORK/$name.csr" -CA "$OUT/ca.crt" -CAkey "$OUT/ca.key" -days "$DAYS" \
    -set_serial "0x$(openssl rand -hex 16)" -extfile "$WORK/$name.ext" -out "$OUT/$name.crt" 2>/dev/null
  echo "gen-certs: $name -> spiffe://$TD/$path"
done

printf 'spiffe://%s/\n' "$TD" >"$OUT/trust-domain"
chmod 0444 "$OUT"/*.crt "$OUT/trust-domain"
chmod 0755 "$OUT"
if [ "${KEEP_CA_KEY:-0}" != "1" ]; then rm -f "$OUT/ca.key"; fi
apply_owners
echo "gen-certs: wrote $OUT"
