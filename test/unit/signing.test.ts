import { describe, expect, it } from 'vitest';
import { canonicalEncoding, generateSigningKeyPair, privateKeyFromPem, publicKeyFromPem, signPayload, verifyPayload } from '../../services/common/signing.ts';

const command = { commandId: 'c1', experimentId: 'exp', action: 'HALT', reason: 'SRM', evidence: '{"p":0.0001}', issuer: 'guardian', issuedAt: 1_764_000_000_000, nonce: 'n1' };

describe('Ed25519 command signatures', () => {
  const keys = generateSigningKeyPair();
  const privateKey = privateKeyFromPem(keys.privateKey);
  const publicKey = publicKeyFromPem(keys.publicKey);

  it('canonical encoding sorts keys at every level and ignores the signature', () => {
    expect(canonicalEncoding({ b: 1, a: { d: [2, { z: 1, y: 2 }], c: 'x' }, signature: 'ignored' }).toString()).toBe('{"a":{"c":"x","d":[2,{"y":2,"z":1}]},"b":1}');
  });

  it('verifies a signed command, whatever the field order', () => {
    const signature = signPayload(command, privateKey);
    const reordered = Object.fromEntries(Object.entries({ ...command, signature }).reverse()) as typeof command & { signature: string };
    expect(verifyPayload(reordered, publicKey)).toBe(true);
  });

  it('rejects a tampered field, another key, and a malformed signature', () => {
    const signature = signPayload(command, privateKey);
    expect(verifyPayload({ ...command, experimentId: 'other', signature }, publicKey)).toBe(false);
    expect(verifyPayload({ ...command, signature }, publicKeyFromPem(generateSigningKeyPair().publicKey))).toBe(false);
    expect(verifyPayload({ ...command, signature: 'not base64 at all!' }, publicKey)).toBe(false);
  });

  it('refuses keys of another type', () => {
    expect(() => privateKeyFromPem('-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----')).toThrow();
  });
});
