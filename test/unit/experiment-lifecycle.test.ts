import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import avro from 'avsc';
import { describe, expect, it } from 'vitest';
import { definitionChanges } from '../../services/common/definitionChanges.ts';
import { DefinitionLedger, encodeDefinitionRecord, signDefinitionRecord, verifyDefinitionRecord, type DefinitionRecordFields } from '../../services/common/definitionRecord.ts';
import { isPipelineError } from '../../services/common/errors.ts';
import { eventSchemas } from '../../services/common/eventSchemas.ts';
import { parseDefinition, type ExperimentDefinition } from '../../services/common/experimentDefinition.ts';
import { countsAfterConclusion, enrollment, EXPERIMENT_STATES, LIFECYCLE_ACTIONS, transition, type ExperimentState, type LifecycleAction } from '../../services/common/experimentLifecycle.ts';
import { decodeExperimentStatus } from '../../services/common/experimentStatus.ts';
import { Keyring } from '../../services/common/keyring.ts';
import { generateSigningKeyPair, privateKeyFromPem, signPayload } from '../../services/common/signing.ts';
import { frame } from '../../services/common/wireFormat.ts';
import { verifyChain } from '../../services/common/auditChain.ts';
import { signedCommand } from '../../services/common/commandSigning.ts';
import { decodeCommandBody } from '../../services/common/contracts/controlCommands.ts';
import { emptyControlState, type ControlState } from '../../services/control/controlState.ts';
import { definedVersion } from '../../services/common/contracts/audit.ts';
import { decideCommand, type ControlInput, type Decision } from '../../services/control/decideCommand.ts';
import { verifyCommand } from '../../services/control/verifyCommand.ts';

const NAMES = ['control', 'bob', 'alice', 'carol', 'guardian', 'mallory'] as const;
const keys = Object.fromEntries(NAMES.map((n) => [n, generateSigningKeyPair()])) as Record<(typeof NAMES)[number], ReturnType<typeof generateSigningKeyPair>>;
const keyring = Keyring.parse({
  principals: [
    { name: 'control', publicKey: keys.control.publicKey, roles: ['control'] },
    { name: 'bob', publicKey: keys.bob.publicKey, roles: ['experimenter'] },
    { name: 'alice', publicKey: keys.alice.publicKey, roles: ['operator'] },
    { name: 'carol', publicKey: keys.carol.publicKey, roles: ['analyst'] },
    { name: 'guardian', publicKey: keys.guardian.publicKey, roles: ['guardian'] },
  ],
}, 'test keyring');
const key = (name: (typeof NAMES)[number]) => privateKeyFromPem(keys[name].privateKey);
const NOW = Date.UTC(2026, 10, 27, 12);

const base = {
  id: 'exp', name: 'Checkout', hypothesis: 'h', owner: 'payments',
  variants: [{ id: 'control', weight: 0.5 }, { id: 'one-page', weight: 0.5 }],
  primaryMetrics: [{ name: 'purchase', type: 'conversion' }],
  guardrailMetrics: [{ name: 'page_load_ms', type: 'sum', harmfulDirection: 'increase', tolerance: { kind: 'relative', value: 0.05 } }],
  plannedSampleSize: 10_000,
};
const definition = (changes: Record<string, unknown> = {}): ExperimentDefinition => parseDefinition({ ...base, ...changes }, 'test');

describe('the experiment lifecycle: one transition table', () => {
  // The table as drawn: (new) → DRAFT → RUNNING ⇄ HALTED → CONCLUDED → ARCHIVED (and DRAFT → ARCHIVED); DEFINE while not concluded.
  const legal: Record<ExperimentState | 'NEW', Partial<Record<LifecycleAction, ExperimentState>>> = {
    NEW: { DEFINE: 'DRAFT' },
    DRAFT: { DEFINE: 'DRAFT', START: 'RUNNING', ARCHIVE: 'ARCHIVED' },
    RUNNING: { DEFINE: 'RUNNING', HALT: 'HALTED', CONCLUDE: 'CONCLUDED' },
    HALTED: { DEFINE: 'HALTED', HALT: 'HALTED', RESUME: 'RUNNING', CONCLUDE: 'CONCLUDED' },
    CONCLUDED: { ARCHIVE: 'ARCHIVED' },
    ARCHIVED: {},
  };
  for (const from of ['NEW', ...EXPERIMENT_STATES] as const) {
    for (const action of LIFECYCLE_ACTIONS) {
      const to = legal[from][action];
      it(`${from} ${action} ${to ? `→ ${to}` : 'is illegal'}`, () => {
        const state = from === 'NEW' ? undefined : from;
        if (to) return expect(transition('exp', state, action)).toBe(to);
        let thrown: unknown;
        try {
          transition('exp', state, action);
        } catch (err) {
          thrown = err;
        }
        expect(isPipelineError(thrown, 'LIFECYCLE_ILLEGAL_MOVE')).toBe(true);
        const code = (thrown as { context: { code: string } }).context.code;
        expect(code).toBe(from === 'NEW' ? 'UNKNOWN_EXPERIMENT' : action === 'RESUME' ? 'NOT_HALTED' : 'ILLEGAL_TRANSITION');
      });
    }
  }

  it('enrolls only while running or halted, and by event time only before a conclusion', () => {
    expect(enrollment(undefined, NOW)).toEqual({ enrolls: false, why: 'NOT_STARTED' });
    expect(enrollment({ status: 'DRAFT', concludedAt: null }, NOW)).toEqual({ enrolls: false, why: 'NOT_STARTED' });
    expect(enrollment({ status: 'RUNNING', concludedAt: null }, NOW)).toEqual({ enrolls: true });
    expect(enrollment({ status: 'HALTED', concludedAt: null }, NOW)).toEqual({ enrolls: true });
    for (const status of ['CONCLUDED', 'ARCHIVED'] as const) {
      expect(enrollment({ status, concludedAt: NOW }, NOW - 1)).toEqual({ enrolls: true });
      expect(enrollment({ status, concludedAt: NOW }, NOW)).toEqual({ enrolls: false, why: 'CONCLUDED' });
      expect(countsAfterConclusion({ status, concludedAt: NOW }, NOW - 1)).toBe(true);
      expect(countsAfterConclusion({ status, concludedAt: NOW }, NOW)).toBe(false);
    }
    expect(enrollment({ status: 'ARCHIVED', concludedAt: null }, 0)).toEqual({ enrolls: false, why: 'CONCLUDED' }); // an abandoned draft
    expect(countsAfterConclusion({ status: 'RUNNING', concludedAt: null }, NOW)).toBe(true);
  });
});

describe('what a change to a running experiment may touch', () => {
  const fields = (changes: Record<string, unknown>) => definitionChanges(definition(), definition(changes)).map((c) => [c.field, c.invalidates]);
  it.each([
    ['weights', { variants: [{ id: 'control', weight: 0.4 }, { id: 'one-page', weight: 0.6 }] }, [['variants', true]]],
    ['a variant added', { variants: [{ id: 'control', weight: 0.34 }, { id: 'one-page', weight: 0.33 }, { id: 'two-page', weight: 0.33 }] }, [['variants', true]]],
    ['the control variant', { control: 'one-page' }, [['control', true]]],
    ['a primary metric type', { primaryMetrics: [{ name: 'purchase', type: 'sum' }] }, [['primaryMetrics', true]]],
    ['a primary metric added', { primaryMetrics: [{ name: 'purchase', type: 'conversion' }, { name: 'revenue', type: 'sum' }] }, [['primaryMetrics', true]]],
    ['a guardrail type', { guardrailMetrics: [{ ...base.guardrailMetrics[0], type: 'conversion' }] }, [['guardrailMetrics.page_load_ms.type', true]]],
    ['a guardrail direction', { guardrailMetrics: [{ ...base.guardrailMetrics[0], harmfulDirection: 'decrease' }] }, [['guardrailMetrics.page_load_ms.harmfulDirection', true]]],
    ['a guardrail removed', { guardrailMetrics: [] }, [['guardrailMetrics', true]]],
    ['the attribution window', { attributionWindowHours: 24 }, [['attributionWindowHours', true]]],
    ['a tolerance', { guardrailMetrics: [{ ...base.guardrailMetrics[0], tolerance: { kind: 'relative', value: 0.1 } }] }, [['guardrailMetrics.page_load_ms.tolerance', false]]],
    ['the SRM threshold', { srmThreshold: 0.0001 }, [['srmThreshold', false]]],
    ['the guardrail alpha and minimum sample', { guardrailAlpha: 0.01, minimumSampleSize: 500 }, [['guardrailAlpha', false], ['minimumSampleSize', false]]],
    ['the plan and the words', { plannedSampleSize: 20_000, name: 'One page', hypothesis: 'faster', owner: 'web' }, [['hypothesis', false], ['name', false], ['owner', false], ['plannedSampleSize', false]]],
  ])('%s', (_name, changes, expected) => {
    expect(fields(changes)).toEqual(expected);
  });
});

describe('definition records: only what the control service signed', () => {
  const fields = (over: Partial<DefinitionRecordFields> = {}): DefinitionRecordFields => ({ experimentId: 'exp', version: 1, appliedAt: NOW, definition: JSON.stringify(definition()), commandId: 'c1', definedBy: 'bob', auditSequence: 7, publisher: 'control', ...over });
  const encode = (record: object) => encodeDefinitionRecord({ signature: null, ...fields(), ...record } as never, 9);
  const genuine = (over: Partial<DefinitionRecordFields> = {}) => encodeDefinitionRecord(signDefinitionRecord(fields(over), key('control')), 9);
  const verdict = (value: Buffer | null) => verifyDefinitionRecord(value, keyring, 'test');

  it('accepts a record signed by the control principal, with where it came from', () => {
    expect(verdict(genuine())).toMatchObject({ ok: true, published: { experimentId: 'exp', version: 1, definedBy: 'bob', auditSequence: 7, publisher: 'control', definition: { id: 'exp' } } });
  });

  it.each([
    ['a tombstone', () => null, 'TOMBSTONE'],
    ['garbage', () => Buffer.from('{"experimentId":"exp"}'), 'UNDECODABLE'],
    ['an unsigned record (as the old expctl wrote them)', () => encode({}), 'UNSIGNED'],
    ['a record signed by a key not in the keyring, claiming control', () => encodeDefinitionRecord(signDefinitionRecord(fields(), key('mallory')), 9), 'BAD_SIGNATURE'],
    ['a record signed by an experimenter as itself', () => encodeDefinitionRecord(signDefinitionRecord(fields({ publisher: 'bob' }), key('bob')), 9), 'NOT_CONTROL'],
    ['a record naming an unknown publisher', () => encodeDefinitionRecord(signDefinitionRecord(fields({ publisher: 'mallory' }), key('mallory')), 9), 'UNKNOWN_PUBLISHER'],
    ['a genuine record with a widened tolerance', () => {
      const record = signDefinitionRecord(fields(), key('control'));
      const widened = definition({ guardrailMetrics: [{ ...base.guardrailMetrics[0], tolerance: { kind: 'relative', value: 0.5 } }] });
      return encodeDefinitionRecord({ ...record, definition: JSON.stringify(widened) }, 9);
    }, 'BAD_SIGNATURE'],
    ['a genuine record re-keyed to another experiment', () => encodeDefinitionRecord({ ...signDefinitionRecord(fields(), key('control')), experimentId: 'other' }, 9), 'BAD_SIGNATURE'],
    ['a signed record whose definition is of another experiment', () => genuine({ experimentId: 'other' }), 'INVALID_DEFINITION'],
  ])('rejects %s', (_name, make, rejection) => {
    expect(verdict(make())).toMatchObject({ ok: false, rejection });
  });

  it('accepts only increasing versions per experiment: a replayed older (or the same) genuine record is rejected', () => {
    const ledger = new DefinitionLedger(keyring, 'test');
    const v1 = genuine();
    const v2 = genuine({ version: 2, definition: JSON.stringify(definition({ srmThreshold: 0.0001 })) });
    expect(ledger.apply(v1, '0').ok).toBe(true);
    expect(ledger.apply(v2, '1').ok).toBe(true);
    expect(ledger.apply(v1, '2')).toMatchObject({ ok: false, rejection: 'STALE_VERSION', experimentId: 'exp', version: 1 });
    expect(ledger.apply(v2, '3')).toMatchObject({ ok: false, rejection: 'STALE_VERSION' });
    expect(ledger.get('exp')).toMatchObject({ version: 2, definition: { srmThreshold: 0.0001 } });
  });
});

describe('control decisions through the lifecycle', () => {
  let offset = 0;
  const input = (command: ControlInput['command']): ControlInput => ({ topic: 'exp.control', partition: 0, offset: offset++, command, apiRefusal: undefined });
  const command = (who: (typeof NAMES)[number], action: LifecycleAction, payload?: unknown, at = NOW) => signedCommand({ experimentId: 'exp', action, reason: `${action} by ${who}`, ...(payload === undefined ? {} : { payload: typeof payload === 'string' ? payload : JSON.stringify(payload) }) }, who, key(who), at);
  /** Applies decisions to the state as the service does. */
  const run = (state: ControlState, ...commands: ControlInput['command'][]): Decision[] =>
    commands.map((c) => {
      const d = decideCommand(input(c), state, { keyring, apiPrincipal: 'admin-api', freshness: { maxAgeMs: 300_000, maxSkewMs: 30_000 }, now: NOW });
      state.lastAudit = d.audit;
      if (d.nonce) state.nonces.set(d.nonce.nonce, d.nonce.issuedAt);
      if (d.status) state.statuses.set(d.status.experimentId, d.status);
      if (d.definition) state.definitions.set(d.definition.experimentId, d.definition.published);
      return d;
    });
  const code = (d: Decision) => d.audit.reason.slice(0, d.audit.reason.indexOf(':'));
  const summary = (d: Decision) => [d.audit.decision, code(d), d.status?.status ?? null, d.definition?.published.version ?? null];

  it('defines a draft, changes it freely, starts it, takes a tolerance change, refuses design changes, concludes and archives it', () => {
    const state = emptyControlState();
    const tolerance = (value: number) => definition({ guardrailMetrics: [{ ...base.guardrailMetrics[0], tolerance: { kind: 'relative', value } }] });
    const decisions = run(
      state,
      command('bob', 'DEFINE', definition()),
      command('bob', 'DEFINE', definition()),
      command('bob', 'DEFINE', definition({ variants: [{ id: 'control', weight: 0.4 }, { id: 'one-page', weight: 0.6 }] })),
      command('bob', 'START'),
      command('bob', 'DEFINE', definition({ variants: [{ id: 'control', weight: 0.5 }, { id: 'one-page', weight: 0.5 }] })),
      command('bob', 'DEFINE', definition({ variants: [{ id: 'control', weight: 0.4 }, { id: 'one-page', weight: 0.6 }], primaryMetrics: [{ name: 'purchase', type: 'sum' }] })),
      command('bob', 'DEFINE', { ...tolerance(0.1), variants: [{ id: 'control', weight: 0.4 }, { id: 'one-page', weight: 0.6 }] }),
      command('guardian', 'HALT'),
      command('bob', 'DEFINE', { ...tolerance(0.2), variants: [{ id: 'control', weight: 0.4 }, { id: 'one-page', weight: 0.6 }], srmThreshold: 0.0001 }),
      command('bob', 'CONCLUDE', { decision: 'no-ship' }),
      command('bob', 'START'),
      command('alice', 'RESUME'),
      command('bob', 'DEFINE', definition()),
      command('bob', 'ARCHIVE'),
    );
    expect(decisions.map(summary)).toEqual([
      ['ACCEPTED', 'DEFINE', 'DRAFT', 1],
      ['ACCEPTED', 'DEFINE', null, null], // unchanged
      ['ACCEPTED', 'DEFINE', null, 2], // a draft may change its design
      ['ACCEPTED', 'START', 'RUNNING', null],
      ['REJECTED', 'INVALIDATING_CHANGE', null, null],
      ['REJECTED', 'INVALIDATING_CHANGE', null, null],
      ['ACCEPTED', 'DEFINE', null, 3], // a tolerance change while running
      ['ACCEPTED', 'HALT', 'HALTED', null],
      ['ACCEPTED', 'DEFINE', null, 4], // thresholds while halted
      ['ACCEPTED', 'CONCLUDE', 'CONCLUDED', null],
      ['REJECTED', 'ILLEGAL_TRANSITION', null, null],
      ['REJECTED', 'NOT_HALTED', null, null],
      ['REJECTED', 'ILLEGAL_TRANSITION', null, null],
      ['ACCEPTED', 'ARCHIVE', 'ARCHIVED', null],
    ]);
    expect(decisions[1]!.audit.reason).toBe('DEFINE: unchanged at version 1: DEFINE by bob');
    expect(definedVersion(decisions[2]!.audit.reason)).toEqual({ version: 2, changed: true });
    expect(definedVersion(decisions[1]!.audit.reason)).toEqual({ version: 1, changed: false });
    expect(decisions[4]!.audit.reason).toMatch(/^INVALIDATING_CHANGE: exp is RUNNING; changing variants would invalidate the statistics/);
    expect(decisions[5]!.audit.reason).toMatch(/changing primaryMetrics would invalidate/);
    expect(decisions[6]!.audit.reason).toMatch(/^DEFINE: version 3 \(changed guardrailMetrics\.page_load_ms\.tolerance\)/);
    expect(decisions[10]!.audit.reason).toMatch(/^ILLEGAL_TRANSITION: exp is CONCLUDED: START is not a move from CONCLUDED \(allowed: ARCHIVE\)/);
    expect(decisions[0]!.definition!.published).toMatchObject({ version: 1, definedBy: 'bob', auditSequence: 1, commandId: decisions[0]!.audit.commandId });
    expect(decisions[3]!.status).toMatchObject({ startedAt: NOW, definitionVersion: 2, by: 'bob' });
    expect(decisions[9]!.status).toMatchObject({ status: 'CONCLUDED', concludedAt: NOW, decision: 'no-ship', definitionVersion: 4, startedAt: NOW });
    expect(decisions[13]!.status).toMatchObject({ status: 'ARCHIVED', concludedAt: NOW, decision: 'no-ship' });
    expect(verifyChain(decisions.map((d) => d.audit))).toEqual({ ok: true, records: decisions.length });
  });

  it('refuses DEFINE from anyone but an experimenter, and a START from an operator, before looking at the experiment', () => {
    const state = emptyControlState();
    const decisions = run(state, command('carol', 'DEFINE', definition()), command('alice', 'DEFINE', definition()), command('guardian', 'DEFINE', definition()), command('mallory', 'DEFINE', definition()), command('bob', 'DEFINE', definition()), command('alice', 'START'), command('guardian', 'CONCLUDE', { decision: 'no-ship' }));
    expect(decisions.map(code)).toEqual(['WRONG_ROLE', 'WRONG_ROLE', 'WRONG_ROLE', 'UNKNOWN_PRINCIPAL', 'DEFINE', 'WRONG_ROLE', 'WRONG_ROLE']);
    expect(state.definitions.get('exp')?.version).toBe(1);
    expect(state.statuses.get('exp')?.status).toBe('DRAFT');
  });

  it('refuses unsigned, forged, tampered, replayed and stale DEFINEs, and definitions that do not validate', () => {
    const state = emptyControlState();
    const valid = command('bob', 'DEFINE', definition());
    const widened = command('bob', 'DEFINE', definition());
    const decisions = run(
      state,
      { ...command('bob', 'DEFINE', definition()), signature: '' },
      command('bob', 'DEFINE', definition(), NOW - 10 * 60_000),
      { ...widened, payload: JSON.stringify(definition({ srmThreshold: 0.4 })) },
      { ...signedCommand({ experimentId: 'exp', action: 'DEFINE', reason: 'forged', payload: JSON.stringify(definition()) }, 'bob', key('mallory'), NOW) },
      command('bob', 'DEFINE', 'not json'),
      command('bob', 'DEFINE', { ...base, variants: [{ id: 'control', weight: 0.7 }, { id: 'one-page', weight: 0.7 }] }),
      command('bob', 'DEFINE', { ...base, id: 'other' }),
      command('bob', 'DEFINE'),
      valid,
      valid,
    );
    expect(decisions.map(code)).toEqual(['UNSIGNED', 'STALE', 'BAD_SIGNATURE', 'BAD_SIGNATURE', 'INVALID_DEFINITION', 'INVALID_DEFINITION', 'INVALID_DEFINITION', 'INVALID_DEFINITION', 'DEFINE', 'REPLAYED']);
    expect(decisions[5]!.audit.reason).toMatch(/variants: weights must sum to 1/);
    expect(decisions[6]!.audit.reason).toMatch(/the definition is of 'other', the command of 'exp'/);
    expect(decisions.filter((d) => d.definition)).toHaveLength(1);
  });

  it('needs a decision naming a variant to conclude', () => {
    const state = emptyControlState();
    const decisions = run(state, command('bob', 'DEFINE', definition()), command('bob', 'START'), command('bob', 'CONCLUDE'), command('bob', 'CONCLUDE', { decision: 'ship:two-page' }), command('bob', 'CONCLUDE', { decision: 'ship:one-page' }));
    expect(decisions.map(code)).toEqual(['DEFINE', 'START', 'INVALID_DECISION', 'INVALID_DECISION', 'CONCLUDE']);
    expect(decisions[4]!.status).toMatchObject({ decision: 'ship:one-page' });
  });
});

describe('records written before the lifecycle still decode', () => {
  const legacy = (name: string) => avro.Type.forSchema(JSON.parse(readFileSync(resolve(import.meta.dirname, `../../schemas/history/${name}.v1.avsc`), 'utf8')) as avro.Schema, { registry: {} });

  it('an old HALT (no payload field) decodes and its signature still verifies', () => {
    const unsigned = { commandId: 'c', experimentId: 'exp', action: 'HALT', reason: 'r', evidence: '{}', issuer: 'guardian', issuedAt: NOW, nonce: 'n' };
    const old = legacy('ControlCommand').toBuffer({ ...unsigned, signature: signPayload(unsigned, key('guardian')) });
    const decoded = decodeCommandBody(old);
    expect(decoded).toMatchObject({ ...unsigned, payload: null });
    expect(verifyCommand(decoded, keyring, new Set(), NOW)).toEqual({ accepted: true, principal: 'guardian' });
  });

  it('an old status reads with no lifecycle times, and an old definition record is unsigned', () => {
    const status = { experimentId: 'exp', status: 'HALTED', since: NOW, by: 'guardian', reason: 'r', commandId: 'c', definitionVersion: 2, auditSequence: 3 };
    expect(decodeExperimentStatus(frame(1, legacy('ExperimentStatus').toBuffer(status)))).toEqual({ ...status, startedAt: null, concludedAt: null, decision: null });
    const record = frame(1, legacy('ExperimentDefinitionRecord').toBuffer({ experimentId: 'exp', version: 3, appliedAt: NOW, definition: JSON.stringify(definition()) }));
    expect(verifyDefinitionRecord(record, keyring, 'test')).toMatchObject({ ok: false, rejection: 'UNSIGNED', experimentId: 'exp', version: 3 });
  });

  it('the new schemas read every old version (what the registry checks as BACKWARD)', () => {
    for (const [name, type] of [['ControlCommand', eventSchemas().controlCommand], ['ExperimentStatus', eventSchemas().experimentStatus], ['ExperimentDefinitionRecord', eventSchemas().definition]] as const) {
      expect(() => type.createResolver(legacy(name)), name).not.toThrow();
    }
  });
});
