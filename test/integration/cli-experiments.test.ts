import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DefinitionsTable } from '../../services/common/definitionsTable.ts';
import { runExpctl, spawnService } from '../support/childService.ts';
import { testPipeline } from '../support/pipeline.ts';

const ROOT = resolve(import.meta.dirname, '../..');

describe('expctl experiments', () => {
  it('apply, start, conclude and archive sign commands with the caller\'s key; the control service decides, and the output and exit status say what it decided', async () => {
    const pipeline = testPipeline('cli-experiments', { principals: { carol: ['analyst'], alice: ['operator'] } });
    const control = spawnService('services/control/main.ts', { ...pipeline.env, ADMIN_API_PORT: '0' });
    // Stopped after the test, passed or failed, by test/support/processHygiene.ts.
    await control.started;
    const as = (who: string) => ({ EXPCTL_KEY_FILE: pipeline.fixture.keyFile(who), EXPCTL_PRINCIPAL: who });
    const run = (env: Record<string, string>, ...args: string[]) => runExpctl(['experiments', ...args], { env: { ...process.env, ...pipeline.env, ...env, LOG_LEVEL: 'warn' }, timeoutMs: 60_000 });
    const experimenter = as('experimenter');
    const dir = mkdtempSync(join(tmpdir(), 'experiments-'));
    const file = join(dir, 'checkout.yaml');
    copyFileSync(join(ROOT, 'experiments/checkout-redesign.yaml'), file);
    const edit = (from: string, to: string) => writeFileSync(file, readFileSync(file, 'utf8').replace(from, to));

    const first = await run(experimenter, 'apply', file);
    expect(first.stdout, first.stderr).toBe('checkout-redesign: ACCEPTED (audit record 1): version 1\n');
    expect(first.status).toBe(0);
    expect((await run(experimenter, 'apply', file)).stdout).toBe('checkout-redesign: ACCEPTED (audit record 2): unchanged, version 1\n');
    // A draft may change anything.
    edit('weight: 0.5\n  - id: one-page\n    weight: 0.5', 'weight: 0.4\n  - id: one-page\n    weight: 0.6');
    expect((await run(experimenter, 'apply', file)).stdout).toBe('checkout-redesign: ACCEPTED (audit record 3): version 2\n');

    const table = new DefinitionsTable(pipeline.kafka, pipeline.topics.definitions, pipeline.logger, { keyring: pipeline.keyring });
    await table.start();
    await table.stop();
    expect(table.get('checkout-redesign')).toMatchObject({ version: 2, definedBy: 'experimenter', publisher: 'control', auditSequence: 3, definition: { variants: [{ id: 'control', weight: 0.4 }, { id: 'one-page', weight: 0.6 }] } });

    // Invalid files are refused before anything is sent; wrong roles and missing keys too.
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, readFileSync(file, 'utf8').replace('weight: 0.4', 'weight: 0.7'));
    const invalid = await run(experimenter, 'apply', file, bad);
    expect(invalid.status).toBe(2);
    expect(invalid.stderr).toContain(`${bad}: invalid experiment definition`);
    expect(invalid.stderr).toContain('variants: weights must sum to 1');
    expect(invalid.stdout).toBe(''); // all or nothing: the valid file was not sent either
    const analyst = await run(as('carol'), 'apply', file);
    expect(analyst.stdout).toMatch(/^checkout-redesign: REJECTED \(audit record 4\): WRONG_ROLE: DEFINE needs one of experimenter; carol has analyst\n$/);
    expect(analyst.status).toBe(1);
    const operator = await run(as('alice'), 'start', 'checkout-redesign', '--reason', 'operators do not start experiments');
    expect(operator.stdout).toMatch(/REJECTED \(audit record 5\): WRONG_ROLE: START needs one of experimenter; alice has operator/);
    expect(operator.status).toBe(1);
    const keyless = await run({}, 'apply', file);
    expect(keyless.status).toBe(2);
    expect(keyless.stderr).toContain('no signing key: pass --key-file or set EXPCTL_KEY_FILE');

    // The lifecycle: start, a refused design change, an accepted tolerance change, conclude, archive.
    const started = await run(experimenter, 'start', 'checkout-redesign', '--reason', 'launch');
    expect(started.stdout).toBe('checkout-redesign: ACCEPTED (audit record 6): START: launch\n');
    edit('weight: 0.4\n  - id: one-page\n    weight: 0.6', 'weight: 0.5\n  - id: one-page\n    weight: 0.5');
    const reweighted = await run(experimenter, 'apply', file);
    expect(reweighted.stdout).toMatch(/^checkout-redesign: REJECTED \(audit record 7\): INVALIDATING_CHANGE: checkout-redesign is RUNNING; changing variants would invalidate/);
    expect(reweighted.status).toBe(1);
    edit('weight: 0.5\n  - id: one-page\n    weight: 0.5', 'weight: 0.4\n  - id: one-page\n    weight: 0.6');
    edit('tolerance: { kind: relative, value: 0.05 }', 'tolerance: { kind: relative, value: 0.03 }');
    const tightened = await run(experimenter, 'apply', file, '--reason', 'tighter page-load guardrail');
    expect(tightened.stdout).toBe('checkout-redesign: ACCEPTED (audit record 8): version 3\n');
    expect((await run(experimenter, 'conclude', 'checkout-redesign', '--reason', 'done')).status).not.toBe(0); // --decision is required
    const wrongDecision = await run(experimenter, 'conclude', 'checkout-redesign', '--reason', 'done', '--decision', 'ship:two-page');
    expect(wrongDecision.stdout).toMatch(/REJECTED \(audit record 9\): INVALID_DECISION: decision 'ship:two-page' is not ship:<variant> \(variants: control, one-page\)/);
    const concluded = await run(experimenter, 'conclude', 'checkout-redesign', '--reason', 'purchases up, page load flat', '--decision', 'ship:one-page');
    expect(concluded.stdout).toBe('checkout-redesign: ACCEPTED (audit record 10): CONCLUDE: ship:one-page: purchases up, page load flat\n');
    const restart = await run(experimenter, 'start', 'checkout-redesign', '--reason', 'once more');
    expect(restart.stdout).toMatch(/REJECTED \(audit record 11\): ILLEGAL_TRANSITION: checkout-redesign is CONCLUDED: START is not a move from CONCLUDED \(allowed: ARCHIVE\)/);
    expect((await run(experimenter, 'archive', 'checkout-redesign', '--reason', 'shipped')).stdout).toBe('checkout-redesign: ACCEPTED (audit record 12): ARCHIVE: shipped\n');
    const redefine = await run(experimenter, 'apply', file);
    expect(redefine.stdout).toMatch(/REJECTED \(audit record 13\): ILLEGAL_TRANSITION: checkout-redesign is ARCHIVED: DEFINE is not a move from ARCHIVED \(allowed: nothing\)/);
  }, 240_000);

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
