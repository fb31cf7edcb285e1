import { describe, expect, it } from 'vitest';
import { DEFINITION_LIMITS, parseDefinition } from '../../services/common/experimentDefinition.ts';
import { generateSigningKeyPair, privateKeyFromPem, signPayload } from '../../services/common/signing.ts';
import { appendRecord, verifyChain } from '../../services/common/auditChain.ts';
import { type AuditFields, type AuditRecord } from '../../services/common/contracts/audit.ts';
import { Keyring } from '../../services/control/keyring.ts';
import { RefusalAudit, type Refusal, type RefusalNote } from '../../services/control/refusalAudit.ts';
import type { ControlCommand } from '../../services/common/contracts/controlCommands.ts';
import { COMMAND_LIMITS, verifyCommand } from '../../services/control/verifyCommand.ts';

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

function signed(over: Partial<ControlCommand>, privateKeyPem: string): ControlCommand {
  const unsigned = { commandId: 'c1', experimentId: 'exp', action: 'HALT', reason: 'r', evidence: '{}', issuer: 'guardian', issuedAt: NOW - 1_000, nonce: 'n1', ...over };
  const { signature: _s, ...fields } = unsigned as ControlCommand;
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

  it.each([
    ['reason', 2_001],
    ['experimentId', 129],
    ['issuer', 5_000],
    ['nonce', 1_000_000],
    ['evidence', 256 * 1024 + 1],
    ['action', 17],
    ['payload', 64 * 1024 + 1],
  ] as const)('rejects a command whose %s is over its cap, before checking the signature, without quoting it', (field, length) => {
    const verdict = verifyCommand(signed({ [field]: 'x'.repeat(length) }, guardian.privateKey), keyring, none, NOW);
    expect(verdict).toEqual({ accepted: false, rejection: 'MALFORMED', detail: `${field}: at most ${COMMAND_LIMITS[field]} characters (got ${length})` });
  });

  it('takes a DEFINE whose payload is the largest definition DEFINITION_LIMITS allow, every string escaped as JSON', () => {
    const id = (prefix: string, i: number) => `${prefix}${i}`.padEnd(DEFINITION_LIMITS.idLength, 'x');
    // U+0001 is not whitespace (so trim keeps it) and JSON writes it as six characters.
    const escaped = (n: number) => `a${'\u0001'.repeat(n - 2)}z`;
    const definition = parseDefinition({
      id: id('e', 0),
      name: escaped(DEFINITION_LIMITS.nameLength),
      hypothesis: escaped(DEFINITION_LIMITS.hypothesisLength),
      owner: escaped(DEFINITION_LIMITS.ownerLength),
      variants: Array.from({ length: DEFINITION_LIMITS.variants }, (_, i) => ({ id: id('v', i), weight: i === 0 ? 1 - (DEFINITION_LIMITS.variants - 1) * 0.0123456789012345 : 0.0123456789012345 })),
      control: id('v', 1),
      primaryMetrics: Array.from({ length: DEFINITION_LIMITS.primaryMetrics }, (_, i) => ({ name: id('p', i), type: 'conversion' })),
      guardrailMetrics: Array.from({ length: DEFINITION_LIMITS.guardrailMetrics }, (_, i) => ({ name: id('g', i), type: 'conversion', harmfulDirection: 'decrease', tolerance: { kind: 'relative', value: 1.2345678901234567e-300 } })),
      srmThreshold: 0.0012345678901234567,
      guardrailAlpha: 0.012345678901234567,
      attributionWindowHours: 123.45678901234567,
      minimumSampleSize: Number.MAX_SAFE_INTEGER - 1,
      plannedSampleSize: Number.MAX_SAFE_INTEGER,
    }, 'largest');
    const payload = JSON.stringify(definition);
    expect(payload.length).toBeLessThan(COMMAND_LIMITS.payload! / 2);
    const experimenter = generateSigningKeyPair();
    const withExperimenter = Keyring.parse({ principals: [{ name: 'erin', publicKey: experimenter.publicKey, roles: ['experimenter'] }] }, 'k');
    const command = signed({ action: 'DEFINE', issuer: 'erin', experimentId: definition.id, payload }, experimenter.privateKey);
    expect(verifyCommand(command, withExperimenter, none, NOW)).toEqual({ accepted: true, principal: 'erin' });
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

describe('refused halts in the audit log: every refusal counted, no caller can flood the chain', () => {
  const make = (maxCallers?: number) => {
    let now = Date.UTC(2026, 10, 25, 12);
    const notes: RefusalNote[] = [];
    const audit = new RefusalAudit({ windowMs: 60_000, record: async (note) => void notes.push(note), now: () => now, ...(maxCallers ? { maxCallers } : {}) });
    return { audit, notes, advance: (ms: number) => void (now += ms) };
  };
  const carol = (over: Partial<Refusal> = {}): Refusal => ({ code: 'FORBIDDEN', status: 403, who: 'carol', address: '10.0.0.7', action: 'HALT', experimentId: 'exp-b', ...over });

  it('records a caller\'s first refusal at once and the rest of the window as one summary with the count', async () => {
    const { audit, notes, advance } = make();
    for (let i = 0; i < 30; i++) {
      await audit.refuse(carol());
      advance(100);
    }
    expect(notes).toHaveLength(1);
    expect(notes[0]).toMatchObject({ code: 'FORBIDDEN', action: 'HALT', experimentId: 'exp-b', refusals: 1 });
    expect(notes[0]!.reason).toMatch(/^HALT refused \(403\) for carol from 10\.0\.0\.7; further refusals of this caller within 60 s are counted in one record$/);
    await audit.sweep();
    expect(notes).toHaveLength(1); // the window has not ended
    advance(60_000);
    await audit.sweep();
    expect(notes).toHaveLength(2);
    expect(notes[1]).toMatchObject({ code: 'FORBIDDEN', action: 'HALT', experimentId: 'exp-b', refusals: 29 });
    expect(notes[1]!.reason).toMatch(/^29 more refusal\(s\) \(403\) for carol from 10\.0\.0\.7 between \S+ and \S+: HALT ×29; on exp-b ×29$/);
    expect(notes.reduce((n, note) => n + note.refusals, 0)).toBe(30);
  });

  it('summarizes at the caller\'s next refusal after the window when no sweep came first, then starts a new window', async () => {
    const { audit, notes, advance } = make();
    await audit.refuse(carol());
    await audit.refuse(carol({ action: 'RESUME', experimentId: 'exp-c' }));
    advance(61_000);
    await audit.refuse(carol());
    expect(notes.map((n) => n.refusals)).toEqual([1, 1, 1]);
    expect(notes[1]!.reason).toMatch(/^1 more refusal\(s\) .*: RESUME ×1; on exp-c ×1$/);
    expect(notes[2]!.reason).toMatch(/^HALT refused/);
  });

  it('keeps callers apart by principal or credential, address and refusal code', async () => {
    const { audit, notes } = make();
    await audit.refuse(carol());
    await audit.refuse(carol({ address: '10.0.0.8' }));
    await audit.refuse(carol({ who: 'dave' }));
    await audit.refuse(carol({ code: 'UNAUTHENTICATED', status: 401, who: 'a caller with an unknown token' }));
    await audit.refuse(carol({ code: 'THROTTLED', status: 429, who: 'a caller with an unknown token' }));
    expect(notes).toHaveLength(5);
    expect(notes.map((n) => n.code)).toEqual(['FORBIDDEN', 'FORBIDDEN', 'FORBIDDEN', 'UNAUTHENTICATED', 'THROTTLED']);
  });

  it('names at most five experiments in a summary and counts the others', async () => {
    const { audit, notes } = make();
    for (let i = 0; i < 9; i++) await audit.refuse(carol({ experimentId: `exp-${i}` }));
    await audit.stop();
    expect(notes[1]!.refusals).toBe(8);
    expect(notes[1]!.reason).toMatch(/on exp-1 ×1, exp-2 ×1, exp-3 ×1, exp-4 ×1, exp-5 ×1, 3 on other experiments$/);
  });

  it('stays bounded under a spray of addresses: callers beyond the limit share one overflow entry', async () => {
    const { audit, notes } = make(3);
    for (let i = 0; i < 1_000; i++) await audit.refuse(carol({ code: 'UNAUTHENTICATED', status: 401, who: 'a caller with an unknown token', address: `10.1.${i >> 8}.${i & 255}` }));
    expect(notes).toHaveLength(4); // three callers, then the overflow entry's first refusal
    expect(notes[3]!.reason).toMatch(/for callers beyond the tracking limit from many addresses/);
    await audit.stop();
    expect(notes).toHaveLength(5);
    expect(notes[4]).toMatchObject({ refusals: 996 });
    expect(notes.reduce((n, note) => n + note.refusals, 0)).toBe(1_000);
  });
});
