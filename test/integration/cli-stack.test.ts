import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Kafka, logLevel } from 'kafkajs';
import { afterAll, describe, expect, it } from 'vitest';
import { isProcessAlive } from '../../services/common/processes.ts';
import { readStackState } from '../../services/common/stackState.ts';
import { runExpctl } from '../support/childService.ts';
import { trackPid } from '../support/processRegistry.ts';

const ROOT = resolve(import.meta.dirname, '../..');

/** Runs the real CLI in a child process, as a user would. */
function expctl(args: string[], env: Record<string, string>) {
  return runExpctl(args, { env: { ...process.env, EXP_CACHE_DIR: join(ROOT, '.cache'), LOG_LEVEL: 'warn', KAFKA_BROKERS: '', SCHEMA_REGISTRY_URL: '', CLICKHOUSE_URL: '', ...env }, timeoutMs: 170_000 });
}

describe('expctl stack up | status | down', () => {
  const stackDir = mkdtempSync(join(tmpdir(), 'expctl-stack-'));
  const env = { EXP_STACK_DIR: stackDir };
  afterAll(async () => {
    await expctl(['stack', 'down', '--purge'], env);
    rmSync(stackDir, { recursive: true, force: true });
  });

  it('starts a working stack, reports it, refuses to start it twice, and stops it cleanly', async () => {
    const up = await expctl(['stack', 'up', '--json'], env);
    expect(up.stderr).toMatch(/Starting Apache Kafka/);
    expect(up.status).toBe(0);
    // The stack outlives expctl on purpose; should `stack down` fail, the file's cleanup stops it.
    const started = readStackState(stackDir)!;
    trackPid(started.kafka.pid, 'stack up: kafka');
    trackPid(started.registry.pid, 'stack up: schema registry');
    const endpoints = JSON.parse(up.stdout) as { KAFKA_BROKERS: string; SCHEMA_REGISTRY_URL: string; CHDB_PATH: string };
    expect(endpoints.KAFKA_BROKERS).toMatch(/^127\.0\.0\.1:\d+$/);

    // The endpoints work for other programs.
    const admin = new Kafka({ brokers: [endpoints.KAFKA_BROKERS], clientId: 'cli-test', logLevel: logLevel.NOTHING }).admin();
    await admin.connect();
    expect(await admin.listTopics()).toContain('_schemas');
    await admin.disconnect();
    const subjects = await fetch(`${endpoints.SCHEMA_REGISTRY_URL}/subjects`);
    expect(await subjects.json()).toEqual([]);
    expect(existsSync(join(endpoints.CHDB_PATH))).toBe(true);

    const status = await expctl(['stack', 'status', '--json'], env);
    expect(status.status).toBe(0);
    const components = JSON.parse(status.stdout) as { name: string; running: boolean }[];
    expect(components.map((c) => [c.name, c.running])).toEqual([['kafka', true], ['schema-registry', true], ['clickhouse', true]]);

    const again = await expctl(['stack', 'up', '--json'], env);
    expect(again.status).toBe(0);
    expect(again.stderr).toMatch(/already running/);
    expect(JSON.parse(again.stdout)).toEqual(endpoints);

    const state = readStackState(stackDir)!;
    const down = await expctl(['stack', 'down'], env);
    expect(down.status).toBe(0);
    expect(isProcessAlive(state.kafka.pid)).toBe(false);
    expect(isProcessAlive(state.registry.pid)).toBe(false);
    const after = await expctl(['stack', 'status'], env);
    expect(after.status).toBe(1);
    expect(after.stdout).toMatch(/down\s+kafka/);
  }, 180_000);

  it('names the bad setting and exits 2 on invalid configuration', async () => {
    const bad = await expctl(['stack', 'status'], { ...env, KAFKA_BROKERS: 'no-port-here' });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain('kafka.brokers.0 (from KAFKA_BROKERS): expected host:port');
  });
});
