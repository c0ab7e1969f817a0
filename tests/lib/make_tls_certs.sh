#!/bin/bash
# Test certificates, made fresh in DIR: ca, server (127.0.0.1 IP SAN, signed by ca), client
# (URI SAN spiffe://example.org/ns/pay/sa/billing, signed by ca), stranger (signed by ca, an ID no
# rule binds), other_ca and other_client (signed by other_ca). EC P-256 keys, valid one day.
set -euo pipefail
dir=$1
cd "$dir"
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1.key" 2>/dev/null; }
ca() {
  key "$1"
  openssl req -x509 -new -key "$1.key" -days 1 -subj "/O=Example/CN=$2" -out "$1.crt" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
}
leaf() {  # name ca subject extensions
  key "$1"
  openssl req -new -key "$1.key" -subj "$3" -out "$1.csr"
  printf '%s\n' "$4" > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA "$2.crt" -CAkey "$2.key" -CAcreateserial -days 1 -extfile "$1.ext" \
    -out "$1.crt" 2>/dev/null
}
ca ca "Test CA"
ca other_ca "Other CA"
leaf server ca "/O=Example/CN=127.0.0.1" "subjectAltName=IP:127.0.0.1,DNS:localhost
extendedKeyUsage=serverAuth"
leaf client ca "/O=Example/OU=pay/CN=billing" "subjectAltName=URI:spiffe://example.org/ns/pay/sa/billing
extendedKeyUsage=clientAuth"
leaf stranger ca "/O=Example/OU=ops/CN=stranger" "subjectAltName=URI:spiffe://example.org/ns/ops/sa/stranger
extendedKeyUsage=clientAuth"
leaf other_client other_ca "/O=Example/CN=billing" "subjectAltName=URI:spiffe://example.org/ns/pay/sa/billing
extendedKeyUsage=clientAuth"
chmod 600 ./*.key
