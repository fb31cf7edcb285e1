import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { openClickHouse } from '../../services/common/clickhouse.ts';
import { applyMigrations } from '../../services/common/migrations.ts';
import { runExpctl } from '../support/childService.ts';
import { stackEndpoints } from '../support/stack.ts';

const ROOT = resolve(import.meta.dirname, '../..');

describe('expctl query and the analyst views', () => {
  it('runs read-only SQL as a table or JSON, answers the views, and refuses writes and oversized results', async () => {
    if (stackEndpoints().clickhouseUrl) return; // prepares a chDB directory of its own
    const dataDir = mkdtempSync(join(tmpdir(), 'query-chdb-'));
    const ch = await openClickHouse({ username: 'default', password: '', database: 'expstream', dataDir });
    await applyMigrations(ch.client, resolve(ROOT, 'infra/clickhouse/migrations'));
    const delta = (variant: string, metric: string, users: number, sum: number, sumSquares: number, offset: number) => ({
      experiment_id: 'exp', variant_id: variant, metric, exposed_users: metric === '' ? users : 0, conflicts: 0, sum, sum_squares: sumSquares, conversions: 0, events: metric === '' ? 0 : users,
      definition_version: 1, emitted_at: Date.UTC(2026, 10, 25), events_partition: 0, first_offset: offset, last_offset: offset, kafka_topic: 'exp.aggregates', kafka_partition: 0, kafka_offset: offset,
    });
    await ch.client.insert({ table: 'aggregate_deltas', format: 'JSONEachRow', values: [delta('a', '', 4, 0, 0, 1), delta('a', 'revenue', 4, 10, 30, 1), delta('b', '', 2, 0, 0, 2), delta('b', 'revenue', 2, 2, 2, 2)] });
    await ch.client.insert({ table: 'control_commands', format: 'JSONEachRow', values: [{ command_id: 'c1', experiment_id: 'exp', action: 'HALT', reason: 'SRM', evidence: '{"pValue":1e-5}', issuer: 'guardian', issued_at: Date.UTC(2026, 10, 25, 1), nonce: 'n', signature: 's', kafka_topic: 'exp.control', kafka_partition: 0, kafka_offset: 0 }] });
    await ch.close();

    const run = (...args: string[]) => runExpctl(['query', ...args], { env: { ...process.env, CHDB_PATH: dataDir, CLICKHOUSE_URL: '', LOG_LEVEL: 'warn' } });
    const summary = await run("SELECT variant_id, users, sum_x, mean, variance FROM experiment_summary WHERE experiment_id = 'exp' AND metric = 'revenue' ORDER BY variant_id", '--json');
    expect(summary.status, summary.stderr).toBe(0);
    expect(JSON.parse(summary.stdout)).toEqual([
      { variant_id: 'a', users: '4', sum_x: 10, mean: 2.5, variance: (30 - 4 * 2.5 * 2.5) / 3 },
      { variant_id: 'b', users: '2', sum_x: 2, mean: 1, variance: 0 },
    ]);
    const table = await run("SELECT experiment_id, issuer, reason FROM halts");
    expect(table.status).toBe(0);
    expect(table.stdout).toMatch(/experiment_id\s+issuer\s+reason\n-+\s+-+\s+-+\nexp\s+guardian\s+SRM\n/);

    const write = await run("INSERT INTO halts SELECT * FROM halts");
    expect(write.status).toBe(2);
    expect(write.stderr).toMatch(/query failed: .*readonly/i);
    const lifted = await run('SELECT 1 SETTINGS max_result_rows = 0');
    expect(lifted.status).toBe(2);
    expect(lifted.stderr).toContain('SETTINGS clauses are not allowed');
    const big = await run('SELECT number FROM system.numbers LIMIT 50', '--max-rows', '10');
    expect(big.status).toBe(2);
    expect(big.stderr).toMatch(/query failed: .*(Limit for result exceeded|TOO_MANY_ROWS)/i);
  });
});
