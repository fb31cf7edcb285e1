/**
 * Before/after figures for the guard's decisions (the README's "Halts you can trust" table):
 *   node --import tsx test/support/measureGuardDecisions.ts [root]
 * measures the guard of the checkout at `root` (default: this one) with the seeded
 * simulations of ./guardSimulation.ts: the A/A false-halt rate of a wide design, the users
 * a 0.1 sd guardrail regression takes to halt, and SRM halts for 100/0 and 97/3 splits. An
 * older checkout (e.g. `git archive <commit> services | tar -x -C /tmp/before`, with a
 * node_modules link) gives the figures before.
 */
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { median, simulateRuns, wideDesignDefinition, type Evaluate } from './guardSimulation.ts';

const root = resolve(process.argv[2] ?? new URL('../..', import.meta.url).pathname);
const { evaluateExperiment } = (await import(pathToFileURL(`${root}/services/guard/evaluate.ts`).href)) as { evaluateExperiment: Evaluate };
const { parseDefinition } = (await import(pathToFileURL(`${root}/services/common/experimentDefinition.ts`).href)) as { parseDefinition: (v: unknown, s: string) => never };
const publish = (d: Record<string, unknown>) => ({ experimentId: String(d.id), version: 1, appliedAt: 0, definition: parseDefinition(d, 'measure') });
const evaluate: Evaluate = (s, p) => evaluateExperiment(s, p);
const pct = (k: number, n: number) => `${k}/${n} = ${((100 * k) / n).toFixed(1)} %`;

console.log(`guard at ${root}`);
{
  const runs = 300;
  const out = simulateRuns({ published: publish(wideDesignDefinition(3, 10, 1_000)), actualSplit: [0.25, 0.25, 0.25, 0.25], lookEvery: 100, maxUsers: 4_000 }, evaluate, runs, 1_000);
  const halted = out.filter((o) => o.haltedAt !== null);
  console.log(`A/A, 3 treatments × 10 guardrails, zero tolerance, looks every 100 users to 4,000: false halts ${pct(halted.length, runs)} (SRM ${halted.filter((o) => o.type === 'SAMPLE_RATIO_MISMATCH').length}, guardrail ${halted.filter((o) => o.type === 'GUARDRAIL_REGRESSION').length})`);
}
{
  const runs = 100;
  const d = { ...wideDesignDefinition(1, 1, 1_600), id: 'harm' };
  const out = simulateRuns({ published: publish(d), actualSplit: [0.5, 0.5], shiftSd: [0, 0.1], lookEvery: 100, maxUsers: 30_000 }, evaluate, runs, 5_000);
  const at = out.filter((o) => o.type === 'GUARDRAIL_REGRESSION').map((o) => o.haltedAt!);
  console.log(`guardrail +0.1 sd, zero tolerance, planned 1,600 per variant, looks every 100 users: detected ${pct(at.length, runs)} by 30,000 users, median ${median(at)} users in all (${median(at) / 2} per variant)`);
}
for (const split of [[1, 0], [0.97, 0.03]]) {
  const runs = 50;
  const d = { ...wideDesignDefinition(1, 1, 10_000), id: 'split' };
  const out = simulateRuns({ published: publish(d), actualSplit: split, lookEvery: 10, maxUsers: 20_000 }, evaluate, runs, 77);
  const at = out.filter((o) => o.type === 'SAMPLE_RATIO_MISMATCH').map((o) => o.haltedAt!);
  console.log(`SRM, planned 50/50, actual ${split.join('/')}, looks every 10 users to 20,000: halted ${pct(at.length, runs)}${at.length ? `, median ${median(at)} users` : ''}`);
}
