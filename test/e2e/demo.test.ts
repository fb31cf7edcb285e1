import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { spawnTracked } from '../support/childService.ts';

const ROOT = resolve(import.meta.dirname, '../..');

describe('npm run demo, shortened', () => {
  it('halts the sample-ratio-mismatch and guardrail-regression experiments, lets the healthy one run, and exits 0', async () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'demo-')), 'run');
    const child = spawnTracked(process.execPath, [join(ROOT, 'bin/expctl.js'), 'demo', '--users', '9000', '--rate', '1500', '--dir', dir], { label: 'expctl demo', env: { ...process.env, LOG_LEVEL: 'info' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
    // 'close': the process has exited and its output has been read to the end.
    const status = await new Promise<number | null>((done) => child.once('close', done));
    expect(status, `${stdout}\n${stderr}`).toBe(0);
    expect(stdout).toMatch(/OK: demo-checkout ran on; demo-onboarding and demo-search were halted\./);
    expect(stdout).toMatch(/^demo-checkout: RUNNING, [\d,]+ users$/m);
    expect(stdout).toMatch(/^demo-onboarding: HALTED since /m);
    expect(stdout).toMatch(/^demo-search: HALTED since /m);
    expect(stdout).toMatch(/demo-onboarding: sample ratio mismatch/);
    expect(stdout).toMatch(/demo-search: guardrail page_load_ms regressed in neural/);
    // Both halts were timed, and results carry intervals.
    expect(stdout.match(/latency from the decisive event produced to HALTED on exp.state: \d+ ms/g)).toHaveLength(2);
    expect(stdout).toMatch(/one-page .* page_load_ms .*\[[\d.]+, [\d.]+\]/);
    const stored = /holds: exposures ([\d,]+), metric_events ([\d,]+), aggregate_deltas ([\d,]+), anomalies (\d+), control_commands (\d+), audit_log (\d+), dead_letters ([\d,]+), experiment_definitions (\d+), experiment_conclusions (\d+)/.exec(stdout);
    expect(stored).not.toBeNull();
    expect(Number(stored![1]!.replaceAll(',', ''))).toBeGreaterThan(3_000);
    // Three DEFINEs and three STARTs by the demo experimenter, two guardian HALTs, one CONCLUDE: all accepted and audited.
    expect(Number(stored![5])).toBe(9);
    expect(Number(stored![6])).toBe(9);
    expect(Number(stored![8])).toBe(3);
    expect(Number(stored![9])).toBe(1);
    expect(stdout).toMatch(/^demo-checkout concluded \(inconclusive\) by demo-experimenter, audit record \d+/m);
    expect(stderr).toMatch(/✓ Stopping the pipeline/);
  }, 300_000);
});
