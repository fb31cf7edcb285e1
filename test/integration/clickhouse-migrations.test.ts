import { appendFileSync, cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { ClickHouseHandle } from '../../services/common/clickhouse.ts';
import { isPipelineError } from '../../services/common/errors.ts';
import { applyMigrations, MIGRATIONS_TABLE, readMigrations } from '../../services/common/migrations.ts';
import { openTestClickHouse } from '../support/clickhouse.ts';

const FIXTURES = resolve(import.meta.dirname, '../fixtures/migrations');
const REAL_MIGRATIONS = resolve(import.meta.dirname, '../../infra/clickhouse/migrations');

async function rows<T>(ch: ClickHouseHandle, query: string): Promise<T[]> {
  return (await ch.client.query({ query, format: 'JSONEachRow' })).json<T>();
}

/** Runs a scenario on a fresh database and closes it afterwards. */
async function withDatabase(scenario: (ch: ClickHouseHandle) => Promise<void>): Promise<void> {
  const ch = await openTestClickHouse();
  try {
    await scenario(ch);
  } finally {
    await ch.close();
  }
}

/** A migrations directory assembled from fixture files. */
function migrationSet(files: string[]): string {
  const dir = mkdtempSync(join(tmpdir(), 'migr-'));
  for (const file of files) cpSync(join(FIXTURES, file), join(dir, file.split('/').pop()!));
  return dir;
}

async function failure(run: () => Promise<unknown>): Promise<Error> {
  try {
    await run();
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a failure');
}

describe('ClickHouse migrations on the real engine', () => {
  it('applies files in order, once, records them, and the schema takes inserts and selects', () =>
    withDatabase(async (ch) => {
      const first = await applyMigrations(ch.client, join(FIXTURES, 'ok'));
      expect(first).toEqual({ applied: ['001_create_events.sql', '002_add_variant.sql'], alreadyApplied: [] });
      const second = await applyMigrations(ch.client, join(FIXTURES, 'ok'));
      expect(second).toEqual({ applied: [], alreadyApplied: ['001_create_events.sql', '002_add_variant.sql'] });
      const recorded = await rows<{ version: number; name: string }>(ch, `SELECT version, name FROM ${MIGRATIONS_TABLE} ORDER BY version`);
      expect(recorded).toEqual([
        { version: 1, name: '001_create_events.sql' },
        { version: 2, name: '002_add_variant.sql' },
      ]);

      await ch.client.insert({
        table: 'events',
        values: [
          { experiment_id: 'e1', user_id: 'u1', value: 1.5, event_time: '2026-11-25 10:00:00.000', variant_id: 'control' },
          { experiment_id: 'e1', user_id: 'u2', value: 2.5, event_time: '2026-11-25 10:00:01.250', variant_id: 'treatment' },
          { experiment_id: 'e1', user_id: 'u3', value: 4, event_time: '2026-11-25 10:00:02.000', variant_id: 'treatment' },
        ],
        format: 'JSONEachRow',
      });
      const perVariant = await rows<{ variant_id: string; events: string; total: number }>(ch, 'SELECT variant_id, events, total FROM events_per_variant ORDER BY variant_id');
      expect(perVariant).toEqual([
        { variant_id: 'control', events: '1', total: 1.5 },
        { variant_id: 'treatment', events: '2', total: 6.5 },
      ]);
      const where = await rows<{ database: string }>(ch, "SELECT database FROM system.tables WHERE name = 'events' AND database = currentDatabase()");
      expect(where).toEqual([{ database: ch.database }]);
      const times = await rows<{ t: string }>(ch, "SELECT toString(event_time) AS t FROM events WHERE user_id = 'u2'");
      expect(times).toEqual([{ t: '2026-11-25 10:00:01.250' }]);
    }));

  it('stops at a failing migration with its file name and the server message, recording nothing for it', () =>
    withDatabase(async (ch) => {
      const dir = migrationSet(['ok/001_create_events.sql', 'broken/002_bad_column.sql']);
      const err = await failure(() => applyMigrations(ch.client, dir));
      rmSync(dir, { recursive: true, force: true });
      expect(isPipelineError(err, 'MIGRATION_FAILED')).toBe(true);
      expect(err.message).toContain('002_bad_column.sql');
      expect(err.message).toContain('statement 2 of 2');
      expect(err.message).toMatch(/NoSuchType/);
      const recorded = await rows<{ name: string }>(ch, `SELECT name FROM ${MIGRATIONS_TABLE} ORDER BY version`);
      expect(recorded.map((r) => r.name)).toEqual(['001_create_events.sql']);
    }));

  it('refuses an applied migration that was edited afterwards', () =>
    withDatabase(async (ch) => {
      const dir = mkdtempSync(join(tmpdir(), 'migr-'));
      try {
        cpSync(join(FIXTURES, 'ok'), dir, { recursive: true });
        await applyMigrations(ch.client, dir);
        appendFileSync(join(dir, '001_create_events.sql'), '\n-- edited\n');
        const edited = await failure(() => applyMigrations(ch.client, dir));
        expect(isPipelineError(edited, 'MIGRATION_CHANGED')).toBe(true);
        expect(edited.message).toContain('001_create_events.sql');
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }));

  it('refuses badly named or duplicate-numbered files before touching the database', () => {
    const dir = mkdtempSync(join(tmpdir(), 'migr-'));
    try {
      cpSync(join(FIXTURES, 'ok'), dir, { recursive: true });
      writeFileSync(join(dir, '3_no_padding.sql'), 'SELECT 1');
      expect(() => readMigrations(dir)).toThrow(/3_no_padding\.sql: the name must look like 001_/);
      rmSync(join(dir, '3_no_padding.sql'));
      writeFileSync(join(dir, '002_same_number.sql'), 'SELECT 1');
      expect(() => readMigrations(dir)).toThrow(/share the number 002/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('applies the project migrations cleanly, twice', () =>
    withDatabase(async (ch) => {
      const first = await applyMigrations(ch.client, REAL_MIGRATIONS);
      const second = await applyMigrations(ch.client, REAL_MIGRATIONS);
      expect(second.applied).toEqual([]);
      expect(second.alreadyApplied).toEqual(first.applied);
    }));
});
