// hsmctl --help: every command, option and exit status (README "hsmctl" says the same).
#include "app/hsmctl/options.h"

namespace hsmb::hsmctl {

const char* const usage = R"usage(usage: hsmctl [--socket PATH | --address URL] [--token T] [--output text|json] COMMAND [ARGS]

Talks to hsm-broker over its Unix socket or HTTP. Default endpoint: $HSMCTL_SOCKET, else
$VAULT_ADDR (e.g. http://127.0.0.1:8200), else /run/hsm-broker/broker.sock.
The token is --token, else $VAULT_TOKEN; it is sent as X-Vault-Token.

broker:
  status                                  health, then the members table (exit 0 serving, 2 not)
  members                                 GET /v1/broker/members, as a table: P50/P99 latency in ms,
                                          LAST-ERROR with its age, "(recovered)" once serving again
  sync [--repair]                         each key version's copies and fingerprints, per member
                                          (exit 1 on drift); --repair: copies what is missing first
keys:
  keys [list]                             key names
  keys create NAME [--type TYPE] [--auto-rotate-period D]
                                          aes256-gcm96 (default), aes128-gcm96, ecdsa-p256,
                                          ecdsa-p384, ed25519, rsa-2048, rsa-3072, rsa-4096, hmac;
                                          prints the name, type and version
  keys show NAME                          type, versions, settings, public keys
  keys rotate NAME                        a new key version; prints it
  keys config NAME [--min-decryption-version N] [--min-encryption-version N]
                   [--deletion-allowed true|false] [--auto-rotate-period D]
  keys delete NAME                        only once `keys config NAME --deletion-allowed true`
data (INPUT: the operand, else --input-file F, else stdin):
  encrypt NAME [PLAINTEXT]                prints the ciphertext
  decrypt NAME CIPHERTEXT                 writes the plaintext, raw, to stdout
  rewrap NAME CIPHERTEXT [--key-version N]
                                          the ciphertext under the latest (or N) key version
  datakey NAME [--plaintext] [--bits 128|256|512]
                                          a fresh data key wrapped by NAME; --plaintext also
                                          prints the key itself (base64)
  sign NAME [INPUT] [--hash H] [--signature-algorithm pss|pkcs1v15]
                                          prints the signature
  verify NAME [INPUT] SIGNATURE [--hash H] [--signature-algorithm A] [--hmac]
                                          prints valid/invalid (exit 0 / 1); --hmac: SIGNATURE is
                                          an HMAC from `hsmctl hmac`
  hmac NAME [INPUT] [--hash H]            prints the HMAC (vault:vN:...)
  random [BYTES] [--hex]                  BYTES (default 32) random bytes, base64 or hex
audit and tokens:
  audit hash VALUE                        VALUE as the audit log writes it (hmac-sha256:...)
  audit verify FILE                       offline: recomputes the audit log's hash chain;
                                          "ok, N lines" (exit 0) or the first broken line (exit 1)
  token new NAME                          offline: a fresh token and its auth.tokens line

input: INPUT is taken byte for byte. `echo hello | hsmctl sign k` signs "hello\n", newline
included; --no-newline drops one trailing newline ("\n" or "\r\n") from stdin or --input-file
(or use printf). --input-file F reads F (binary safe) instead of stdin.

options:
  --socket PATH         Unix socket of the broker
  --address URL         http://HOST:PORT or unix:///PATH
  --token T             token for X-Vault-Token
  --output json, -o json, --json
                        print the broker's answer as JSON on stdout, for scripts (status:
                        {"health": ..., "members": [...]}; keys delete: {}; audit verify and
                        token new: their result as an object); errors still go to stderr too
  -h, --help            this text

exit status:
  0  ok
  1  the answer is no: verify found the signature invalid, sync found drift, audit verify
     found a broken line
  2  bad usage, or the broker answered an error (4xx/5xx; status: no member serving)
  3  the broker is unreachable (cannot connect, or no answer within 30 s)
)usage";

}  // namespace hsmb::hsmctl
