import { createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';

/**
 * Ed25519 signatures over a canonical encoding, for control commands (node:crypto only).
 * Canonical form: JSON with object keys sorted at every level, no whitespace, and the
 * `signature` field left out; so a signer and a verifier in any language agree byte for
 * byte, whatever order the fields were built in.
 */
export function canonicalEncoding(value: Record<string, unknown>): Buffer {
  const { signature: _ignored, ...rest } = value;
  return Buffer.from(canonicalJson(rest), 'utf8');
}

function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') {
    if (typeof value === 'number' && !Number.isFinite(value)) throw new TypeError('non-finite numbers cannot be signed');
    return JSON.stringify(value) ?? 'null';
  }
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
}

export interface KeyPairPem {
  publicKey: string;
  privateKey: string;
}

export function generateSigningKeyPair(): KeyPairPem {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  return { publicKey: publicKey.export({ type: 'spki', format: 'pem' }).toString(), privateKey: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString() };
}

export function privateKeyFromPem(pem: string): KeyObject {
  const key = createPrivateKey(pem);
  if (key.asymmetricKeyType !== 'ed25519') throw new Error(`expected an Ed25519 private key, got ${key.asymmetricKeyType}`);
  return key;
}

export function publicKeyFromPem(pem: string): KeyObject {
  const key = createPublicKey(pem);
  if (key.asymmetricKeyType !== 'ed25519') throw new Error(`expected an Ed25519 public key, got ${key.asymmetricKeyType}`);
  return key;
}

/** The base64 signature of the command's canonical encoding. */
export function signPayload(payload: Record<string, unknown>, privateKey: KeyObject): string {
  return sign(null, canonicalEncoding(payload), privateKey).toString('base64');
}

export function verifyPayload(payload: Record<string, unknown> & { signature: string }, publicKey: KeyObject): boolean {
  try {
    return verify(null, canonicalEncoding(payload), publicKey, Buffer.from(payload.signature, 'base64'));
  } catch {
    return false;
  }
}
