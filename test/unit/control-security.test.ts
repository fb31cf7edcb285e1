import { describe, expect, it } from 'vitest';
import { generateSigningKeyPair, privateKeyFromPem, signPayload } from '../../services/common/signing.ts';
import { appendRecord, verifyChain, type AuditFields, type AuditRecord } from '../../services/control/auditChain.ts';
import { Keyring } from '../../services/control/keyring.ts';
import { verifyCommand, type CommandFields } from '../../services/control/verifyCommand.ts';

const guardian = generateSigningKeyPair();
const operator = generateSigningKeyPair();
const analyst = generateSigningKeyPair();
const stranger = generateSigningKeyPair();
const keyring = Keyring.parse({
  principals: [
    { name: 'guardian', publicKey: guardian.publicKey, roles: ['guardian'] },
    { name: 'alice', publicKey: operator.publicKey, roles: ['operator'] },
    { name: 'bob', publicKey: analyst.publicKey, roles: ['analyst'] },
  ],
  apiTokens: [{ sha256: '9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08', principal: 'alice' }], // sha256("test")
}, 'test keyring');
const NOW = Date.UTC(2026, 10, 25, 12);

function signed(over: Partial<CommandFields>, privateKeyPem: string): CommandFields {
  const unsigned = { commandId: 'c1', experimentId: 'exp', action: 'HALT', reason: 'r', evidence: '{}', issuer: 'guardian', issuedAt: NOW - 1_000, nonce: 'n1', ...over };
  const { signature: _s, ...fields } = unsigned as CommandFields;
  return { ...fields, signature: signPayload(fields, privateKeyFromPem(privateKeyPem)) };
}

describe('control command verification: the attacks', () => {
  const none = new Set<string>();
  it('accepts a guardian HALT and an operator RESUME', () => {
    expect(verifyCommand(signed({}, guardian.privateKey), keyring, none, NOW)).toEqual({ accepted: true, principal: 'guardian' });
    expect(verifyCommand(signed({ action: 'RESUME', issuer: 'alice' }, operator.privateKey), keyring, none, NOW)).toEqual({ accepted: true, principal: 'alice' });
  });

  it.each([
    ['unsigned', () => ({ ...signed({}, guardian.privateKey), signature: '' }), 'UNSIGNED'],
    ['forged (signed by a key not in the keyring)', () => signed({}, stranger.privateKey), 'BAD_SIGNATURE'],
    ['tampered after signing', () => ({ ...signed({}, guardian.privateKey), experimentId: 'another' }), 'BAD_SIGNATURE'],
    ['wrong role (an analyst halting)', () => signed({ issuer: 'bob' }, analyst.privateKey), 'WRONG_ROLE'],
    ['wrong role (the guardian resuming)', () => signed({ action: 'RESUME' }, guardian.privateKey), 'WRONG_ROLE'],
    ['unknown principal', () => signed({ issuer: 'mallory' }, stranger.privateKey), 'UNKNOWN_PRINCIPAL'],
    ['stale', () => signed({ issuedAt: NOW - 10 * 60_000 }, guardian.privateKey), 'STALE'],
    ['dated in the future', () => signed({ issuedAt: NOW + 5 * 60_000 }, guardian.privateKey), 'FROM_THE_FUTURE'],
    ['malformed (no experiment)', () => signed({ experimentId: '' }, guardian.privateKey), 'MALFORMED'],
    ['malformed (unknown action)', () => signed({ action: 'DELETE' }, guardian.privateKey), 'MALFORMED'],
  ])('rejects %s', (_name, make, rejection) => {
    expect(verifyCommand(make(), keyring, none, NOW)).toMatchObject({ accepted: false, rejection });
  });

  it('rejects a replay (a nonce seen before)', () => {
    expect(verifyCommand(signed({}, guardian.privateKey), keyring, new Set(['n1']), NOW)).toMatchObject({ accepted: false, rejection: 'REPLAYED' });
  });

  it('maps API tokens to principals by hash only, and validates the keyring', () => {
    expect(keyring.principalForToken('test')?.name).toBe('alice');
    expect(keyring.principalForToken('wrong')).toBeUndefined();
    expect(() => Keyring.parse({ principals: [{ name: 'x', publicKey: guardian.publicKey, roles: ['root'] }] }, 'k.json')).toThrow(/k\.json: invalid keyring: principals\.0\.roles\.0/);
    expect(() => Keyring.parse({ principals: [{ name: 'x', publicKey: guardian.publicKey, roles: ['operator'] }], apiTokens: [{ sha256: 'a'.repeat(64), principal: 'y' }] }, 'k.json')).toThrow(/no principal 'y'/);
  });
});

describe('hash-chained audit log', () => {
  const fields = (i: number): AuditFields => ({ decidedAt: NOW + i, decision: i % 2 ? 'REJECTED' : 'ACCEPTED', reason: `r${i}`, commandId: `c${i}`, experimentId: 'exp', action: 'HALT', issuer: 'guardian', sourceTopic: 'exp.control', sourcePartition: 0, sourceOffset: i });
  const chain = (): AuditRecord[] => {
    const records: AuditRecord[] = [];
    for (let i = 0; i < 6; i++) records.push(appendRecord(records.at(-1), fields(i)));
    return records;
  };

  it('verifies an intact chain', () => {
    expect(verifyChain(chain())).toEqual({ ok: true, records: 6 });
  });

  it('finds a modified record', () => {
    const records = chain();
    records[3] = { ...records[3]!, decision: 'ACCEPTED', reason: 'rewritten' };
    expect(verifyChain(records)).toMatchObject({ ok: false, sequence: 4, problem: expect.stringContaining('modified') });
  });

  it('finds a deleted record', () => {
    const records = chain();
    records.splice(2, 1);
    expect(verifyChain(records)).toMatchObject({ ok: false, sequence: 4, position: 2, problem: expect.stringContaining('link') });
  });

  it('finds reordered records', () => {
    const records = chain();
    [records[1], records[2]] = [records[2]!, records[1]!];
    expect(verifyChain(records)).toMatchObject({ ok: false, sequence: 3, position: 1 });
  });
});
