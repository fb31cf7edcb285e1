import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Worker } from 'node:worker_threads';
import { buildServiceBundles, SERVICE_NAMES, serviceBundlePath, WORKER_ENTRIES, workerBundlePath } from '../../infra/build/serviceBundles.ts';

const ROOT = resolve(import.meta.dirname, '../..');

describe('service bundles (npm run build)', () => {
  let built: string[];
  const emptyDir = mkdtempSync(join(tmpdir(), 'bundle-cwd-'));
  beforeAll(async () => {
    built = await buildServiceBundles();
  });
  afterAll(() => rmSync(emptyDir, { recursive: true, force: true }));

  it('writes one bundle per service and per worker thread entry, where serviceBundlePath and workerBundlePath say', () => {
    const workers = Object.keys(WORKER_ENTRIES) as (keyof typeof WORKER_ENTRIES)[];
    expect(built.sort()).toEqual([...SERVICE_NAMES.map((name) => serviceBundlePath(name)), ...workers.map((name) => workerBundlePath(name))].sort());
    for (const file of built) expect(existsSync(file)).toBe(true);
  });

  it("rewrites every source's import.meta.dirname to that source's directory in the repository", () => {
    for (const file of built) {
      const text = readFileSync(file, 'utf8');
      // Only the helper itself still reads the bundle's own directory.
      expect(text.split('import.meta.dirname').length - 1).toBe(1);
      const dirs = [...text.matchAll(/__expstreamSourceDir\("([^"]+)"\)/g)].map((m) => m[1]!);
      for (const dir of dirs) expect(existsSync(resolve(ROOT, dir)), `${file}: ${dir}`).toBe(true);
    }
    // The ones that matter at run time: schemas for every service, migrations for the sink, the results page for control.
    const sink = readFileSync(serviceBundlePath('sink'), 'utf8');
    expect(sink).toContain('__expstreamSourceDir("services/common")');
    expect(sink).toContain('__expstreamSourceDir("services/sink")');
    expect(readFileSync(serviceBundlePath('control'), 'utf8')).toContain('__expstreamSourceDir("services/control")');
  });

  it('starts the restore worker from its bundle, next to the aggregator bundle that starts it', async () => {
    // The aggregator bundle starts it as new URL('./aggregate-restore-worker.mjs', import.meta.url).
    expect(readFileSync(serviceBundlePath('aggregate'), 'utf8')).toContain('new URL("./aggregate-restore-worker.mjs", import.meta.url)');
    const worker = new Worker(workerBundlePath('aggregate-restore-worker'));
    try {
      // Every module of it loads; asked to finish a partition it never read, it says so.
      worker.postMessage({ kind: 'seed', strings: ['a'] });
      worker.postMessage({ kind: 'finish', partition: 4, mapping: null });
      const reply = await new Promise((resolve, reject) => {
        worker.once('message', resolve);
        worker.once('error', reject);
      });
      expect(reply).toEqual({ kind: 'failed', partition: 4, message: 'partition 4 was never read here' });
    } finally {
      await worker.terminate();
    }
  });

  it.each(SERVICE_NAMES)('%s loads from its bundle and reaches its config check', (name) => {
    // Started from an empty directory with nothing configured: every module of the bundle (and
    // the packages it imports) loads, then the service refuses to start, saying why.
    const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => !/^(KAFKA_|SCHEMA_REGISTRY|CLICKHOUSE_|EXP_)/.test(key)));
    const run = spawnSync(process.execPath, [serviceBundlePath(name)], { cwd: emptyDir, env, encoding: 'utf8', timeout: 20_000 });
    expect(run.status, run.stderr).toBe(2);
    expect(run.stderr).toMatch(new RegExp(`^${name}: no (Kafka brokers|schema registry) configured`));
  });
});
