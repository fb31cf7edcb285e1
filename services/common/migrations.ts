import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ClickHouseClient } from '@clickhouse/client';
import { PipelineError, errorMessage } from './errors.ts';
import type { Logger } from './logger.ts';
import { splitSqlStatements } from './sqlStatements.ts';

/**
 * Applies `NNN_name.sql` files in order, each once, recording it in `schema_migrations`.
 * A file already applied must not change afterwards (its checksum is compared): write a new
 * migration instead. A failure stops at that file with the server's message; statements
 * should be idempotent (IF NOT EXISTS) so a half-applied file can be re-run after a fix.
 */

export const MIGRATIONS_TABLE = 'schema_migrations';
const FILE_PATTERN = /^(\d{3})_([a-z0-9_]+)\.sql$/;

export interface MigrationFile {
  version: number;
  name: string;
  path: string;
  checksum: string;
  statements: string[];
}

export interface MigrationResult {
  applied: string[];
  alreadyApplied: string[];
}

export function readMigrations(dir: string): MigrationFile[] {
  const files = readdirSync(dir).filter((f) => f.endsWith('.sql')).sort();
  const seen = new Map<number, string>();
  return files.map((file) => {
    const match = FILE_PATTERN.exec(file);
    if (!match) {
      throw new PipelineError('MIGRATION_NAME_INVALID', `migration ${file}: the name must look like 001_create_events.sql (three digits, underscore, lower-case name)`, { context: { file } });
    }
    const version = Number(match[1]);
    const previous = seen.get(version);
    if (previous) throw new PipelineError('MIGRATION_NAME_INVALID', `migrations ${previous} and ${file} share the number ${match[1]}`, { context: { file } });
    seen.set(version, file);
    const text = readFileSync(join(dir, file), 'utf8');
    return { version, name: file, path: join(dir, file), checksum: createHash('sha256').update(text).digest('hex'), statements: splitSqlStatements(text) };
  });
}

export async function applyMigrations(client: ClickHouseClient, dir: string, logger?: Logger): Promise<MigrationResult> {
  const migrations = readMigrations(dir);
  await client.command({
    query: `CREATE TABLE IF NOT EXISTS ${MIGRATIONS_TABLE} (
      version UInt32, name String, checksum String, applied_at DateTime64(3, 'UTC')
    ) ENGINE = MergeTree ORDER BY version`,
  });
  const rows = await (await client.query({ query: `SELECT version, name, checksum FROM ${MIGRATIONS_TABLE} ORDER BY version`, format: 'JSONEachRow' })).json<{ version: number; name: string; checksum: string }>();
  const done = new Map(rows.map((r) => [Number(r.version), r]));
  const result: MigrationResult = { applied: [], alreadyApplied: [] };
  for (const m of migrations) {
    const record = done.get(m.version);
    if (record) {
      if (record.checksum !== m.checksum) {
        throw new PipelineError('MIGRATION_CHANGED', `migration ${m.name} was changed after it was applied (as ${record.name}); add a new migration instead of editing it`, { context: { file: m.name } });
      }
      result.alreadyApplied.push(m.name);
      continue;
    }
    for (const [index, statement] of m.statements.entries()) {
      try {
        await client.command({ query: statement });
      } catch (cause) {
        throw new PipelineError('MIGRATION_FAILED', `migration ${m.name} failed at statement ${index + 1} of ${m.statements.length}: ${errorMessage(cause)}`, { cause, context: { file: m.name, statement: index + 1 } });
      }
    }
    await client.insert({
      table: MIGRATIONS_TABLE,
      values: [{ version: m.version, name: m.name, checksum: m.checksum, applied_at: Date.now() }],
      format: 'JSONEachRow',
    });
    logger?.info({ migration: m.name, statements: m.statements.length }, 'migration applied');
    result.applied.push(m.name);
  }
  return result;
}
