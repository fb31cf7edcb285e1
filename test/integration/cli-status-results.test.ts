import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseDefinition } from '../../services/common/experimentDefinition.ts';
import { consumerGroup } from '../../services/common/topics.ts';
import { runExpctl, spawnService, waitUntilCaughtUp, type ChildService } from '../support/childService.ts';
import { testPipeline } from '../support/pipeline.ts';
import { waitFor } from '../support/waitFor.ts';

describe('expctl produce --wait, status and results', () => {
  const pipeline = testPipeline('cli-results', { principals: { carol: ['analyst'], 'admin-api': ['operator'] }, tokens: ['carol'] });
  const env = { ...pipeline.env, ADMIN_API_KEY_FILE: pipeline.fixture.keyFile('admin-api'), ADMIN_API_PORT: '0', KAFKA_SESSION_TIMEOUT_MS: '6000' };
  const children: ChildService[] = [];
  afterAll(async () => {
    for (const c of children) c.process.kill('SIGTERM');
    await Promise.all(children.map((c) => c.exited));
  });

  it('reports what ingest decided, and shows the same numbers as the admin API', async () => {
    const control = spawnService('services/control/main.ts', env);
    children.push(control);
    await control.started;
    const api = /"url":"(http:\/\/[^"]+)","msg":"admin API listening"/.exec(control.log())![1]!;
    await pipeline.defineThroughControl([parseDefinition({
      id: 'checkout', name: 'checkout', hypothesis: 'h', owner: 'test',
      variants: [{ id: 'control', weight: 0.5 }, { id: 'treatment', weight: 0.5 }],
      primaryMetrics: [{ name: 'orders', type: 'conversion' }, { name: 'revenue', type: 'sum' }],
      plannedSampleSize: 1000,
    }, 'checkout')]);
    for (const service of ['ingest', 'aggregate']) children.push(spawnService(`services/${service}/main.ts`, env));
    await Promise.all(children.map((c) => c.started));

    const dir = mkdtempSync(join(tmpdir(), 'cli-results-'));
    const now = Date.now();
    const exposures = [
      ...Array.from({ length: 40 }, (_, i) => ({ eventId: `x${i}`, experimentId: 'checkout', variantId: i % 2 ? 'treatment' : 'control', userId: `u${i}`, eventTime: now })),
      ...Array.from({ length: 3 }, (_, i) => ({ eventId: `old${i}`, experimentId: 'checkout', variantId: 'control', userId: `old${i}`, eventTime: now - 365 * 86_400_000 })),
      ...Array.from({ length: 2 }, (_, i) => ({ eventId: `unknown${i}`, experimentId: 'no-such-experiment', variantId: 'a', userId: `n${i}`, eventTime: now })),
    ];
    writeFileSync(join(dir, 'exposures.jsonl'), exposures.map((e) => JSON.stringify(e)).join('\n'));
    const cliEnv = { ...process.env, ...env, LOG_LEVEL: 'warn', EXPCTL_TOKEN: pipeline.fixture.tokens.carol!, EXPCTL_API_URL: api };

    const produced = await runExpctl(['produce', 'exposures', '--file', join(dir, 'exposures.jsonl'), '--wait', '--json'], { env: cliEnv, timeoutMs: 90_000 });
    expect(produced.status, produced.stderr).toBe(1);
    const verdicts = JSON.parse(produced.stdout) as { sent: number; valid: number; deadLettered: number; byReason: Record<string, number> };
    expect(verdicts).toMatchObject({ sent: 45, valid: 40, deadLettered: 5, byReason: { EVENT_TIME_TOO_OLD: 3, UNKNOWN_EXPERIMENT: 2 } });
    expect(produced.stderr).toContain('ingest decided 45: 40 valid, 5 dead-lettered (EVENT_TIME_TOO_OLD: 3, UNKNOWN_EXPERIMENT: 2)');

    // Users 0..39 convert on every third; revenue per user i is i.
    const metrics = Array.from({ length: 40 }, (_, i) => [
      ...(i % 3 === 0 ? [{ eventId: `o${i}`, userId: `u${i}`, metric: 'orders', value: 1, eventTime: now + 1 }] : []),
      { eventId: `r${i}`, userId: `u${i}`, metric: 'revenue', value: i, eventTime: now + 1 },
    ]).flat();
    writeFileSync(join(dir, 'metrics.jsonl'), metrics.map((e) => JSON.stringify(e)).join('\n'));
    const good = await runExpctl(['produce', 'metrics', '--file', join(dir, 'metrics.jsonl'), '--wait'], { env: cliEnv, timeoutMs: 90_000 });
    expect(good.status, good.stderr).toBe(0);
    expect(good.stderr).toContain(`ingest decided ${metrics.length}: ${metrics.length} valid, 0 dead-lettered`);

    await waitUntilCaughtUp(pipeline.kafka, consumerGroup(pipeline.prefix, 'aggregate'), [pipeline.topics.events]);
    const fromApi = async () => (await (await fetch(`${api}/experiments/checkout/results`, { headers: { authorization: `Bearer ${pipeline.fixture.tokens.carol}` } })).json()) as { users: number; variants: { variantId: string; users: number; metrics: { metric: string; counts: Record<string, number> }[] }[] };
    // The API's reader of exp.aggregates follows the topic; wait until it shows every user.
    let api1 = await fromApi();
    await waitFor(async () => (api1 = await fromApi()).users === 40, { timeoutMs: 30_000, message: () => `the API shows ${api1.users} users` });
    const inControl = api1.variants.find((v) => v.variantId === 'control')!;
    // Control holds the even users 0, 2, ..., 38: revenue 380, orders from users 0, 6, 12, 18, 24, 30, 36.
    expect(inControl.metrics.find((m) => m.metric === 'revenue')!.counts).toMatchObject({ users: 20, sum: 380, events: 20 });
    expect(inControl.metrics.find((m) => m.metric === 'orders')!.counts).toMatchObject({ users: 20, conversions: 7, events: 7 });

    const results = await runExpctl(['results', 'checkout', '--json'], { env: cliEnv });
    expect(results.status, results.stderr).toBe(0);
    expect(JSON.parse(results.stdout)).toEqual(await fromApi());
    const table = await runExpctl(['results', 'checkout'], { env: cliEnv });
    expect(table.status, table.stderr).toBe(0);
    expect(table.stdout).toContain('checkout: RUNNING');
    expect(table.stdout).toMatch(/revenue \(primary\)\s+control\s+20\s+0\s+20\s+380\s+19\s/);

    const status = await runExpctl(['status'], { env: cliEnv });
    expect(status.status, status.stderr).toBe(0);
    expect(status.stdout).toMatch(/checkout\s+RUNNING\s+\S+\s+40\s+–/);
    expect(status.stdout).toMatch(/ingest\s+\S+expstream\.ingest\s+\d+/);
    const statusJson = JSON.parse((await runExpctl(['status', '--json'], { env: cliEnv })).stdout) as { services: { service: string; lag: number | null }[] };
    expect(statusJson.services.map((s) => s.service)).toEqual(['ingest', 'aggregate', 'guard', 'control', 'sink', 'notify']);
    expect(statusJson.services.find((s) => s.service === 'guard')!.lag).toBeNull();

    const refused = await runExpctl(['results', 'checkout'], { env: { ...cliEnv, EXPCTL_TOKEN: 'not-a-token' } });
    expect(refused.status).toBe(2);
    expect(refused.stderr).toContain('401');
    expect(refused.stderr).not.toContain('not-a-token');
    // Three services and eight expctl processes one after another: 24-57 s alone, more on a busy
    // machine; the limit covers the waits inside (up to 90 s each), not the default 60 s.
  }, 5 * 60_000);
});
