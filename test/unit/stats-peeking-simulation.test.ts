import { describe, expect, it } from 'vitest';
import { chiSquareGoodnessOfFit } from '../../services/stats/chiSquare.ts';
import { differenceConfidenceSequence } from '../../services/stats/confidenceSequence.ts';
import { sequentialSrm } from '../../services/stats/sequentialSrm.ts';
import type { UserLevelSummary } from '../../services/stats/userLevelSummary.ts';
import { welchTest } from '../../services/stats/welch.ts';
import { seededRandom } from '../support/random.ts';

/**
 * Peeking, measured: many simulated experiments, each checked after every batch of users.
 * Anytime-valid methods must keep the chance of ever raising a false alarm at or below
 * alpha; a fixed-horizon test repeated at every look does not.
 */
const ALPHA = 0.05;
const EXPERIMENTS = 1_000;
const BATCH = 200;
const MAX_USERS = 4_000;

interface Arm extends UserLevelSummary {}

/** Simulates users with a skewed metric (exponential, mean 5); returns the first look (in users) each test alarmed at. */
function simulate(seed: number, options: { treatmentShare?: number; treatmentLift?: number }) {
  const random = seededRandom(seed);
  const share = options.treatmentShare ?? 0.5;
  const lift = options.treatmentLift ?? 1;
  const firstAlarm = { srmSequential: [] as (number | null)[], srmNaive: [] as (number | null)[], csTwoSided: [] as (number | null)[], csHarmful: [] as (number | null)[], welchNaive: [] as (number | null)[] };
  for (let e = 0; e < EXPERIMENTS; e++) {
    const control: Arm = { users: 0, sum: 0, sumSquares: 0 };
    const treatment: Arm = { users: 0, sum: 0, sumSquares: 0 };
    const alarms: Record<keyof typeof firstAlarm, number | null> = { srmSequential: null, srmNaive: null, csTwoSided: null, csHarmful: null, welchNaive: null };
    for (let users = 1; users <= MAX_USERS; users++) {
      const arm = random() < share ? treatment : control;
      const x = -Math.log(1 - random()) * 5 * (arm === treatment ? lift : 1);
      arm.users += 1;
      arm.sum += x;
      arm.sumSquares += x * x;
      if (users % BATCH !== 0) continue;
      const counts = [control.users, treatment.users];
      if (alarms.srmSequential === null && sequentialSrm(counts, [0.5, 0.5], ALPHA).mismatch) alarms.srmSequential = users;
      const chi = chiSquareGoodnessOfFit(counts, [0.5, 0.5]);
      if (alarms.srmNaive === null && chi.ok && chi.pValue < ALPHA) alarms.srmNaive = users;
      const cs = differenceConfidenceSequence(control, treatment, ALPHA);
      if (cs.ok && alarms.csTwoSided === null && (cs.lower > 0 || cs.upper < 0)) alarms.csTwoSided = users;
      if (cs.ok && alarms.csHarmful === null && cs.lower > 0) alarms.csHarmful = users;
      const welch = welchTest(control, treatment, ALPHA);
      if (alarms.welchNaive === null && welch.ok && welch.pValue < ALPHA) alarms.welchNaive = users;
    }
    for (const key of Object.keys(firstAlarm) as (keyof typeof firstAlarm)[]) firstAlarm[key].push(alarms[key]);
  }
  return firstAlarm;
}

/** Share of experiments that alarmed, with its Wilson 95 % interval. */
function rate(alarms: (number | null)[]): { rate: number; low: number; high: number } {
  const n = alarms.length;
  const p = alarms.filter((a) => a !== null).length / n;
  const z = 1.959963984540054;
  const centre = (p + (z * z) / (2 * n)) / (1 + (z * z) / n);
  const spread = (z * Math.sqrt((p * (1 - p)) / n + (z * z) / (4 * n * n))) / (1 + (z * z) / n);
  return { rate: p, low: centre - spread, high: centre + spread };
}

function medianUsers(alarms: (number | null)[]): number | null {
  const hits = alarms.filter((a): a is number => a !== null).sort((a, b) => a - b);
  return hits.length === 0 ? null : hits[Math.floor(hits.length / 2)]!;
}

const show = (r: { rate: number; low: number; high: number }) => `${(r.rate * 100).toFixed(1)} % [${(r.low * 100).toFixed(1)}, ${(r.high * 100).toFixed(1)}]`;

describe(`peeking after every ${BATCH} users, up to ${MAX_USERS}, over ${EXPERIMENTS} simulated experiments (alpha ${ALPHA})`, () => {
  it('A/A: the sequential SRM test and the confidence sequence stay at or below alpha; repeated fixed-horizon tests exceed it', () => {
    const aa = simulate(20261125, {});
    const results = { srmSequential: rate(aa.srmSequential), csTwoSided: rate(aa.csTwoSided), csHarmful: rate(aa.csHarmful), srmNaive: rate(aa.srmNaive), welchNaive: rate(aa.welchNaive) };
    console.info(`A/A false alarms: sequential SRM ${show(results.srmSequential)}; confidence sequence (either side) ${show(results.csTwoSided)}, harmful side ${show(results.csHarmful)}; naive chi-square at every look ${show(results.srmNaive)}; naive Welch at every look ${show(results.welchNaive)}`);
    expect(results.srmSequential.rate).toBeLessThanOrEqual(ALPHA);
    expect(results.csTwoSided.rate).toBeLessThanOrEqual(ALPHA);
    expect(results.csHarmful.rate).toBeLessThanOrEqual(ALPHA);
    expect(results.srmNaive.low).toBeGreaterThan(ALPHA);
    expect(results.welchNaive.low).toBeGreaterThan(ALPHA);
  });

  it('with a real effect: reports detection rate and median users to detection', () => {
    const srm = simulate(7, { treatmentShare: 0.47 });
    const harm = simulate(8, { treatmentLift: 1.1 });
    const srmRate = rate(srm.srmSequential);
    const harmRate = rate(harm.csHarmful);
    console.info(`SRM 47/53: sequential detection ${show(srmRate)}, median ${medianUsers(srm.srmSequential)} users. Guardrail +10 %: confidence-sequence detection ${show(harmRate)}, median ${medianUsers(harm.csHarmful)} users`);
    expect(srmRate.rate).toBeGreaterThan(0.7);
    expect(harmRate.rate).toBeGreaterThan(0.5);
  });
});
