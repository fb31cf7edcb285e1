import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Keyring, type Role } from '../../services/common/keyring.ts';
import { generateSigningKeyPair, privateKeyFromPem } from '../../services/common/signing.ts';

/**
 * A keyring for tests: principals with their key pairs and roles, API tokens for some of
 * them, and a principal (mallory) who has keys but is not in the keyring. It always holds the
 * control service's principal `control` (role control): its key signs the definitions the
 * control service publishes, and every service checks them against it.
 */
export function controlFixture(principals: Record<string, Role[]>, tokenHolders: string[]) {
  const all: Record<string, Role[]> = { control: ['control'], ...principals };
  const dir = mkdtempSync(join(tmpdir(), 'control-'));
  const keys: Record<string, ReturnType<typeof generateSigningKeyPair>> = {};
  for (const name of [...Object.keys(all), 'mallory']) keys[name] = generateSigningKeyPair();
  const tokens: Record<string, string> = {};
  for (const name of tokenHolders) tokens[name] = randomBytes(24).toString('base64url');
  const keyringJson = {
    principals: Object.entries(all).map(([name, roles]) => ({ name, publicKey: keys[name]!.publicKey, roles })),
    apiTokens: Object.entries(tokens).map(([principal, token]) => ({ sha256: createHash('sha256').update(token).digest('hex'), principal })),
  };
  const keyringFile = join(dir, 'keyring.json');
  writeFileSync(keyringFile, JSON.stringify(keyringJson, null, 2));
  const keyFile = (name: string) => {
    const path = join(dir, `${name}.key`);
    writeFileSync(path, keys[name]!.privateKey, { mode: 0o600 });
    return path;
  };
  const privateKey = (name: string) => privateKeyFromPem(keys[name]!.privateKey);
  return {
    dir,
    keyringFile,
    keyFile,
    tokens,
    privateKey,
    keyring: Keyring.parse(keyringJson, keyringFile),
    /** A principal's signing identity, for commands (experimenters) or definition records (control). */
    signer: (name: string) => ({ principal: name, privateKey: privateKey(name) }),
    /** What every service process of the pipeline needs: the keyring, and the control service's own key. */
    env: () => ({ KEYRING_FILE: keyringFile, CONTROL_KEY_FILE: keyFile('control') }),
  };
}
