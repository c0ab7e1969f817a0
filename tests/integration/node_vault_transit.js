// node-vault (unmodified, tests/clients) against a running hsm-broker: its named Transit calls
// (transitCreateKey, encryptData, ...) and, for routes it has no name for, its generic write/read.
// One "ok   <check>" or "FAIL <check>" line each; exit status 1 on any failure.
const vault = require('node-vault')({ endpoint: process.argv[2], token: 'any-token' });

const b64 = (s) => Buffer.from(s).toString('base64');
let failed = 0;
function check(name, ok) {
  if (!ok) failed++;
  console.log((ok ? 'ok   ' : 'FAIL ') + 'node-vault ' + name);
}
async function status(promise) {
  try { await promise; return 200; } catch (e) { return e.response ? e.response.statusCode : -1; }
}

(async () => {
  check('health', (await vault.health()).initialized === true);
  check('status (seal status)', (await vault.status()).sealed === false);
  check('initialized', (await vault.initialized()).initialized === true);
  check('mounts', 'transit/' in (await vault.mounts()).data);
  check('tokenLookupSelf', Array.isArray((await vault.tokenLookupSelf()).data.policies));

  await vault.transitCreateKey({ name: 'node-aes' });
  const ct = (await vault.encryptData({ name: 'node-aes', plaintext: b64('from node') })).data.ciphertext;
  check('encryptData', ct.startsWith('vault:v1:'));
  const pt = (await vault.decryptData({ name: 'node-aes', ciphertext: ct })).data.plaintext;
  check('decryptData', Buffer.from(pt, 'base64').toString() === 'from node');
  await vault.write('transit/keys/node-aes/rotate', {});
  check('rewrapData', (await vault.rewrapData({ name: 'node-aes', ciphertext: ct })).data.ciphertext.startsWith('vault:v2:'));
  check('transitReadKey', (await vault.transitReadKey({ name: 'node-aes' })).data.latest_version === 2);
  check('transitListKeys', (await vault.transitListKeys()).data.keys.includes('node-aes'));
  check('batch with a failed item is 400', await status(vault.encryptData({ name: 'node-aes', batch_input: [
    { plaintext: b64('a') }, { plaintext: 'not base64!' }] })) === 400);

  await vault.transitCreateKey({ name: 'node-ec', type: 'ecdsa-p256' });
  const sig = (await vault.write('transit/sign/node-ec/sha2-384', { input: b64('doc') })).data.signature;
  check('write sign + verify', (await vault.write('transit/verify/node-ec/sha2-384', { input: b64('doc'), signature: sig })).data.valid);
  check('write hmac', (await vault.write('transit/hmac/node-aes', { input: b64('doc') })).data.hmac.startsWith('vault:v2:'));
  check('write hash', (await vault.write('transit/hash/sha2-256', { input: b64('abc') })).data.sum ===
    'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
  check('write random', Buffer.from((await vault.write('transit/random/platform/16', {})).data.random_bytes, 'base64').length === 16);
  check('write datakey', (await vault.write('transit/datakey/plaintext/node-aes', {})).data.ciphertext.startsWith('vault:v2:'));
  check('write config', (await status(vault.write('transit/keys/node-aes/config', { deletion_allowed: true }))) === 200);
  check('write config exportable is 400', (await status(vault.write('transit/keys/node-aes/config', { exportable: true }))) === 400);
  check('write csr', (await vault.write('transit/keys/node-ec/csr', {})).data.csr.includes('BEGIN CERTIFICATE REQUEST'));
  check('read openapi', '/transit/keys/{name}' in (await vault.read('sys/internal/specs/openapi')).paths);
  check('transitDeleteKey', (await status(vault.transitDeleteKey({ name: 'node-aes' }))) === 200);
  process.exit(failed ? 1 : 0);
})().catch((e) => { console.log('FAIL node-vault: ' + (e.stack || e)); process.exit(1); });
