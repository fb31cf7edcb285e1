import { describe, expect, it } from 'vitest';
import { parseDefinition } from '../../services/common/experimentDefinition.ts';
import { nonFinitePaths } from '../../services/common/numberBounds.ts';
import { generateSigningKeyPair, privateKeyFromPem } from '../../services/common/signing.ts';
import { verifyChain } from '../../services/common/auditChain.ts';
import { AuthThrottle } from '../../services/control/authThrottle.ts';
import { signedCommand } from '../../services/common/commandSigning.ts';
import { emptyControlState, type ControlState } from '../../services/control/controlState.ts';
import { decideCommand, expiredNonces, type ControlInput, type DecideContext } from '../../services/control/decideCommand.ts';
import { Keyring } from '../../services/control/keyring.ts';
import { liveResults } from '../../services/control/liveResults.ts';

const keys = { guardian: generateSigningKeyPair(), alice: generateSigningKeyPair(), api: generateSigningKeyPair() };
const keyring = Keyring.parse({
  principals: [
    { name: 'guardian', publicKey: keys.guardian.publicKey, roles: ['guardian'] },
    { name: 'alice', publicKey: keys.alice.publicKey, roles: ['operator'] },
    { name: 'admin-api', publicKey: keys.api.publicKey, roles: ['operator'] },
  ],
}, 'test');
const NOW = Date.UTC(2026, 10, 25, 12);
const freshness = { maxAgeMs: 300_000, maxSkewMs: 30_000 };
const context = (now = NOW): DecideContext => ({ keyring, apiPrincipal: 'admin-api', freshness, now });
/** A control state in which experiment `exp` is running under version 3 of its definition. */
function runningState(): ControlState {
  const state = emptyControlState();
  const definition = parseDefinition({ id: 'exp', name: 'e', hypothesis: 'h', owner: 'o', variants: [{ id: 'c', weight: 0.5 }, { id: 't', weight: 0.5 }], primaryMetrics: [{ name: 'buy', type: 'conversion' }], plannedSampleSize: 100 }, 'test');
  state.definitions.set('exp', { version: 3, appliedAt: NOW - 60_000, definition, commandId: 'd3', definedBy: 'bob', auditSequence: 0 });
  state.statuses.set('exp', { experimentId: 'exp', status: 'RUNNING', since: NOW - 50_000, by: 'bob', reason: 'start', commandId: 's1', definitionVersion: 3, auditSequence: 0, startedAt: NOW - 50_000, concludedAt: null, decision: null });
  return state;
}
let offset = 0;
const input = (command: ControlInput['command'], apiRefusal?: string): ControlInput => ({ topic: 'exp.control', partition: 0, offset: offset++, command, apiRefusal });
const sign = (who: 'guardian' | 'alice' | 'admin-api', action: 'HALT' | 'RESUME', experimentId = 'exp', at = NOW) =>
  signedCommand({ experimentId, action, reason: `${action} by ${who}` }, who, privateKeyFromPem(keys[who === 'admin-api' ? 'api' : who].privateKey), at);

/** Applies decisions to the state as the service does, and returns them. */
function run(state: ControlState, inputs: ControlInput[], now = NOW) {
  return inputs.map((i) => {
    const d = decideCommand(i, state, context(now));
    state.lastAudit = d.audit;
    if (d.nonce) state.nonces.set(d.nonce.nonce, d.nonce.issuedAt);
    if (d.status) state.statuses.set(d.status.experimentId, d.status);
    return d;
  });
}

describe('control decisions', () => {
  it('halts, ignores a second halt, resumes, refuses a resume of a running experiment, and chains every decision', () => {
    const state = runningState();
    const decisions = run(state, [input(sign('guardian', 'HALT')), input(sign('alice', 'HALT')), input(sign('alice', 'RESUME')), input(sign('alice', 'RESUME'))]);
    expect(decisions.map((d) => [d.audit.decision, d.audit.reason.split(':')[0], d.status?.status ?? null])).toEqual([
      ['ACCEPTED', 'HALT', 'HALTED'],
      ['ACCEPTED', 'HALT', null],
      ['ACCEPTED', 'RESUME', 'RUNNING'],
      ['REJECTED', 'NOT_HALTED', null],
    ]);
    expect(decisions[0]!.status).toMatchObject({ experimentId: 'exp', by: 'guardian', definitionVersion: 3, auditSequence: 1, since: NOW, startedAt: NOW - 50_000 });
    expect(decisions[1]!.audit.reason).toMatch(/already halted .* no change/);
    expect(verifyChain(decisions.map((d) => d.audit))).toEqual({ ok: true, records: 4 });
    expect(state.nonces.size).toBe(4);
  });

  it('refuses to halt or resume an experiment the control plane does not know', () => {
    const decisions = run(emptyControlState(), [input(sign('guardian', 'HALT')), input(sign('alice', 'RESUME'))]);
    expect(decisions.map((d) => [d.audit.decision, d.audit.reason.split(':')[0], d.status])).toEqual([['REJECTED', 'UNKNOWN_EXPERIMENT', undefined], ['REJECTED', 'UNKNOWN_EXPERIMENT', undefined]]);
  });

  it('records an admin API refusal note only when the API signed it, and never changes state', () => {
    const state = emptyControlState();
    const [note, forged] = run(state, [input(sign('admin-api', 'HALT'), 'FORBIDDEN'), input(sign('alice', 'HALT'), 'FORBIDDEN')]);
    expect(note!.audit).toMatchObject({ decision: 'REJECTED', sourceTopic: 'admin-api', sourcePartition: -1, sourceOffset: -1 });
    expect(note!.audit.reason).toMatch(/^API_FORBIDDEN: /);
    expect(forged!.audit).toMatchObject({ decision: 'REJECTED', sourceTopic: 'exp.control' });
    expect(forged!.audit.reason).toMatch(/^MALFORMED: a refusal note signed by alice/);
    expect(state.statuses.size).toBe(0);
  });

  it('audits an undecodable record with what could not be read', () => {
    const [d] = run(emptyControlState(), [input({ undecodable: 'BAD_MAGIC_BYTE: first byte is 0x48' })]);
    expect(d!.audit).toMatchObject({ decision: 'REJECTED', commandId: null, experimentId: null, sequence: 1 });
    expect(d!.audit.reason).toBe('MALFORMED: BAD_MAGIC_BYTE: first byte is 0x48');
  });

  it('forgets a nonce only once its command could no longer be fresh', () => {
    const nonces = new Map([['old', NOW - 331_000], ['edge', NOW - 329_000], ['new', NOW]]);
    expect(expiredNonces(nonces, NOW, freshness)).toEqual(['old']);
  });
});

describe('admin API auth throttle', () => {
  it('blocks an address after the allowed failures within the window, until the oldest leaves it', () => {
    const throttle = new AuthThrottle(3, 60_000);
    for (const t of [0, 1_000, 2_000]) {
      expect(throttle.blockedFor('10.0.0.1', t)).toBe(0);
      throttle.recordFailure('10.0.0.1', t);
    }
    expect(throttle.blockedFor('10.0.0.1', 3_000)).toBe(57_000);
    expect(throttle.blockedFor('10.0.0.2', 3_000)).toBe(0);
    expect(throttle.blockedFor('10.0.0.1', 60_001)).toBe(0);
  });
});

describe('live results', () => {
  it('computes user-level means, intervals and differences from the totals (values computed by hand)', () => {
    const definition = parseDefinition({ id: 'e', name: 'e', hypothesis: 'h', owner: 'o', variants: [{ id: 'c', weight: 0.5 }, { id: 't', weight: 0.5 }], primaryMetrics: [{ name: 'buy', type: 'conversion' }], guardrailMetrics: [{ name: 'ms', type: 'sum', harmfulDirection: 'increase', tolerance: { kind: 'relative', value: 0.05 } }], plannedSampleSize: 100 }, 'test');
    // c: 4 users with ms 1,2,3,4 (Σ 10, Σx² 30), 1 buyer; t: 4 users with ms 2,4,6,8 (Σ 20, Σx² 120), 2 buyers.
    const totals = { variants: {
      c: { users: 4, conflicts: 0, exposuresByMinute: {}, metrics: { ms: { sum: 10, sumSquares: 30, conversions: 0, events: 4, sumY: 0, sumSquaresY: 0, sumXY: 0 }, buy: { sum: 1, sumSquares: 1, conversions: 1, events: 1, sumY: 0, sumSquaresY: 0, sumXY: 0 } } },
      t: { users: 4, conflicts: 1, exposuresByMinute: {}, metrics: { ms: { sum: 20, sumSquares: 120, conversions: 0, events: 4, sumY: 0, sumSquaresY: 0, sumXY: 0 }, buy: { sum: 2, sumSquares: 2, conversions: 2, events: 2, sumY: 0, sumSquaresY: 0, sumXY: 0 } } },
    } };
    const r = liveResults('e', { experimentId: 'e', version: 2, appliedAt: 0, definition }, totals, undefined);
    expect(r).toMatchObject({ experimentId: 'e', definitionVersion: 2, status: null, control: 'c', users: 8 });
    const t = r.variants[1]!;
    expect(t).toMatchObject({ variantId: 't', users: 4, share: 0.5, conflicts: 1, plannedWeight: 0.5 });
    const ms = t.metrics.find((m) => m.metric === 'ms')!;
    expect(ms.role).toBe('guardrail');
    expect(ms.mean).toBe(5);
    // Sample variance of 2,4,6,8 is 20/3; 95 % normal interval 5 ± 1.959964 · sqrt(20/3 / 4).
    expect(ms.interval95![1] - 5).toBeCloseTo(1.959964 * Math.sqrt(20 / 3 / 4), 5);
    expect(ms.versusControl!.difference).toBe(2.5);
    expect(ms.versusControl!.relativeDifference).toBe(1);
    // Welch: variances 5/3 and 20/3 over 4 users each; SE² = 25/12, df = (25/12)² / ((5/12)²/3 + (5/3)²/3) = 4.41;
    // t(0.975) between df 4 (2.776) and df 5 (2.571) from a t table, interpolated in 1/df: 2.680.
    const [lo, hi] = ms.versusControl!.welch95!;
    expect((lo + hi) / 2).toBeCloseTo(2.5, 12);
    expect((hi - lo) / 2 / Math.sqrt(25 / 12)).toBeGreaterThan(2.66);
    expect((hi - lo) / 2 / Math.sqrt(25 / 12)).toBeLessThan(2.70);
    // The always-valid interval is wider than the fixed-horizon one at the same data.
    expect(ms.versusControl!.alwaysValid!.upper - ms.versusControl!.alwaysValid!.lower).toBeGreaterThan(hi - lo);
    const buy = t.metrics.find((m) => m.metric === 'buy')!;
    expect(buy).toMatchObject({ role: 'primary', type: 'conversion', mean: 0.5 });
    expect(buy.versusControl!.difference).toBe(0.25);
  });

  it('never returns a number that is not finite, even from totals at the edge of doubles', () => {
    const definition = parseDefinition({ id: 'e', name: 'e', hypothesis: 'h', owner: 'o', variants: [{ id: 'c', weight: 0.5 }, { id: 't', weight: 0.5 }], primaryMetrics: [{ name: 'big', type: 'sum' }, { name: 'tiny', type: 'sum' }], plannedSampleSize: 100 }, 'test');
    const published = { experimentId: 'e', version: 1, appliedAt: 0, definition };
    const variant = (users: number, big: [number, number], tiny: number) => ({
      users, conflicts: 0, exposuresByMinute: {},
      metrics: { big: { sum: big[0], sumSquares: big[1], conversions: 0, events: users, sumY: 0, sumSquaresY: 0, sumXY: 0 }, tiny: { sum: tiny, sumSquares: 1, conversions: 0, events: users, sumY: 0, sumSquaresY: 0, sumXY: 0 } },
    });
    // big: a variance whose always-valid half-width squares past the largest double; tiny: a
    // control mean so small (a subnormal) that the relative difference overflows.
    const r = liveResults('e', published, { variants: { c: variant(5_000, [0, 1.7e308], 1e-323), t: variant(5_000, [5_000 * 1e300, 1.7e308], 5_000) } }, undefined);
    expect(nonFinitePaths(r)).toEqual([]);
    const t = Object.fromEntries(r.variants[1]!.metrics.map((m) => [m.metric, m]));
    expect(t.big!.mean).toBe(1e300);
    expect(t.big!.versusControl!.alwaysValid).toBeNull();
    expect(t.big!.versusControl!.welch95).not.toBeNull();
    expect(t.tiny!.versusControl).toMatchObject({ difference: 1, relativeDifference: null });
    expect(JSON.parse(JSON.stringify(r))).toEqual(r);
    // One user each with means of ±1.5e308: the difference itself overflows, so there is none.
    const lone = liveResults('e', published, { variants: { c: variant(1, [-1.5e308, 1], 0), t: variant(1, [1.5e308, 1], 0) } }, undefined);
    expect(nonFinitePaths(lone)).toEqual([]);
    expect(lone.variants[1]!.metrics[0]).toMatchObject({ mean: 1.5e308, interval95: null, versusControl: null });
  });
});
