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

  it('plan prints users per variant and refuses contradictory flags', async () => {
    const run = (...args: string[]) => runExpctl(['experiments', 'plan', ...args]);
    expect((await run('--baseline', '0.1', '--mde', '0.01')).stdout).toMatch(/^14751 users per variant/);
    const both = await run('--baseline', '0.1', '--sd', '2', '--mde', '0.01');
    expect(both.status).toBe(2);
    expect(both.stderr).toContain('give either --baseline');
  });
});
