import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateSigningKeyPair, privateKeyFromPem } from '../../services/common/signing.ts';
import type { Role } from '../../services/control/keyring.ts';

/**
 * A keyring for control-plane tests: principals with their key pairs and roles, API tokens
 * for some of them, and a principal (mallory) who has keys but is not in the keyring.
 */
export function controlFixture(principals: Record<string, Role[]>, tokenHolders: string[]) {
  const dir = mkdtempSync(join(tmpdir(), 'control-'));
  const keys: Record<string, ReturnType<typeof generateSigningKeyPair>> = {};
  for (const name of [...Object.keys(principals), 'mallory']) keys[name] = generateSigningKeyPair();
  const tokens: Record<string, string> = {};
  for (const name of tokenHolders) tokens[name] = randomBytes(24).toString('base64url');
  const keyring = {
    principals: Object.entries(principals).map(([name, roles]) => ({ name, publicKey: keys[name]!.publicKey, roles })),
    apiTokens: Object.entries(tokens).map(([principal, token]) => ({ sha256: createHash('sha256').update(token).digest('hex'), principal })),
  };
  const keyringFile = join(dir, 'keyring.json');
  writeFileSync(keyringFile, JSON.stringify(keyring, null, 2));
  const keyFile = (name: string) => {
    const path = join(dir, `${name}.key`);
    writeFileSync(path, keys[name]!.privateKey, { mode: 0o600 });
    return path;
  };
  return { dir, keyringFile, keyFile, tokens, privateKey: (name: string) => privateKeyFromPem(keys[name]!.privateKey) };
}
