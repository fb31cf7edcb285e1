import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DefinitionsTable } from '../../services/common/definitionsTable.ts';
import { runExpctl } from '../support/childService.ts';
import { testPipeline } from '../support/pipeline.ts';

const ROOT = resolve(import.meta.dirname, '../..');

describe('expctl experiments', () => {
  it('apply publishes versioned definitions, skips unchanged ones, and refuses an invalid file naming the field', async () => {
    const pipeline = testPipeline('cli-experiments');
    const run = (...args: string[]) => runExpctl(['experiments', ...args], { env: { ...process.env, ...pipeline.env, LOG_LEVEL: 'warn' }, timeoutMs: 60_000 });
    const dir = mkdtempSync(join(tmpdir(), 'experiments-'));
    const file = join(dir, 'checkout.yaml');
    copyFileSync(join(ROOT, 'experiments/checkout-redesign.yaml'), file);

    const first = await run('apply', file);
    expect(first.status, first.stderr).toBe(0);
    expect(first.stdout).toBe('checkout-redesign: applied as version 1\n');
    expect((await run('apply', file)).stdout).toBe('checkout-redesign: unchanged (version 1)\n');
    writeFileSync(file, readFileSync(file, 'utf8').replace('minimumSampleSize: 500', 'minimumSampleSize: 800'));
    expect((await run('apply', file)).stdout).toBe('checkout-redesign: applied as version 2\n');

    const table = new DefinitionsTable(pipeline.kafka, pipeline.topics.definitions, pipeline.logger);
    await table.start();
    await table.stop();
    expect(table.get('checkout-redesign')).toMatchObject({ version: 2, definition: { minimumSampleSize: 800, variants: [{ id: 'control' }, { id: 'one-page' }] } });

    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, readFileSync(file, 'utf8').replace('weight: 0.5\n  - id: one-page', 'weight: 0.7\n  - id: one-page'));
    const refused = await run('apply', file, bad);
    expect(refused.status).toBe(2);
    expect(refused.stderr).toContain(`${bad}: invalid experiment definition`);
    expect(refused.stderr).toContain('variants: weights must sum to 1');
    expect(refused.stdout).toBe(''); // all or nothing: the valid file was not published either
  });

  it('apply refuses 200,000 variants at once with the field and the cap, in YAML (over the file cap) and JSON', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'experiments-'));
    const base = { id: 'huge', name: 'huge', hypothesis: 'h', owner: 'o', primaryMetrics: [{ name: 'revenue', type: 'sum' }], plannedSampleSize: 1000 };
    const yaml = join(dir, 'huge.yaml');
    writeFileSync(yaml, `id: huge\nvariants:\n${Array.from({ length: 200_000 }, (_, i) => `  - id: v${i}\n    weight: 0.000005\n`).join('')}`);
    const json = join(dir, 'huge.json');
    writeFileSync(json, JSON.stringify({ ...base, variants: Array.from({ length: 200_000 }, (_, i) => ({ id: `v${i}`, weight: 0.000005 })) }));
    const many = join(dir, 'many.json'); // under the file cap: the list cap answers
    writeFileSync(many, JSON.stringify({ ...base, variants: Array.from({ length: 2_000 }, (_, i) => ({ id: `v${i}`, weight: 0.0005 })) }));
    const run = async (file: string) => {
      const started = Date.now();
      const result = await runExpctl(['experiments', 'apply', file], { env: { ...process.env, KAFKA_BROKERS: '127.0.0.1:1', LOG_LEVEL: 'warn' }, timeoutMs: 60_000 });
      return { ...result, ms: Date.now() - started };
    };
    for (const file of [yaml, json]) {
      const refused = await run(file);
      expect(refused.status, refused.stderr).toBe(2);
      expect(refused.stderr).toContain(`${file}: a definition file may be at most 64 KiB; this one is larger`);
      expect(refused.ms).toBeLessThan(15_000); // the process's own start included; it used to hang
    }
    const refused = await run(many);
    expect(refused.status).toBe(2);
    expect(refused.stderr).toContain('variants: at most 20 variants (got 2000)');
  });

  it('plan prints users per variant and refuses contradictory flags', async () => {
    const run = (...args: string[]) => runExpctl(['experiments', 'plan', ...args]);
    expect((await run('--baseline', '0.1', '--mde', '0.01')).stdout).toMatch(/^14751 users per variant/);
    const both = await run('--baseline', '0.1', '--sd', '2', '--mde', '0.01');
    expect(both.status).toBe(2);
    expect(both.stderr).toContain('give either --baseline');
  });
});
