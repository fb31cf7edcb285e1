import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { openClickHouse } from '../services/common/clickhouse.ts';
import { applyMigrations } from '../services/common/migrations.ts';
import { pseudonymize } from '../services/sink/pseudonymizer.ts';

/**
 * Sink insert rate into the real ClickHouse engine (chDB) for the format the sink uses
 * (JSONEachRow: self-describing rows, robust to column order) against alternatives in the
 * same run: JSONCompactEachRow (arrays in column order) and CSV. Rows are exposures as the
 * sink writes them, in inserts of `batch` rows (the sink inserts one batch per fetch).
 */
export interface SinkFormatResult {
  rows: number;
  batch: number;
  rowsPerSec: Record<string, number>;
}

const COLUMNS = ['experiment_id', 'variant_id', 'user_key', 'event_id', 'event_time', 'source_topic', 'source_partition', 'source_offset', 'schema_id', 'ingest_time', 'pipeline_version', 'kafka_topic', 'kafka_partition', 'kafka_offset'] as const;

export async function runSinkFormatBench(rows: number, batch: number, say: (m: string) => void): Promise<SinkFormatResult> {
  const dataDir = mkdtempSync(join(tmpdir(), 'bench-sink-'));
  const ch = await openClickHouse({ username: 'default', password: '', database: 'bench', dataDir });
  try {
    await applyMigrations(ch.client, resolve(import.meta.dirname, '../infra/clickhouse/migrations'));
    const now = Date.now();
    const objects = Array.from({ length: rows }, (_, i) => ({
      experiment_id: `exp-${i % 3}`, variant_id: i % 2 ? 'control' : 'treatment', user_key: pseudonymize(`user-${i % 50_000}`, 'bench-key-0123456789'), event_id: `e-${i}`, event_time: now + i,
      source_topic: 'exp.exposures.raw', source_partition: i % 3, source_offset: i, schema_id: 1, ingest_time: now, pipeline_version: '0.1.0', kafka_topic: 'exp.events', kafka_partition: i % 3, kafka_offset: i,
    }));
    const formats: Record<string, (chunk: typeof objects) => Promise<unknown>> = {
      JSONEachRow: (chunk) => ch.client.insert({ table: 'exposures', values: chunk, format: 'JSONEachRow' }),
      JSONCompactEachRow: (chunk) => ch.client.insert({ table: 'exposures', values: chunk.map((o) => COLUMNS.map((c) => o[c])), format: 'JSONCompactEachRow' }),
      CSV: (chunk) => ch.client.command({ query: `INSERT INTO exposures FORMAT CSV\n${chunk.map((o) => COLUMNS.map((c) => (typeof o[c] === 'string' ? `"${o[c]}"` : o[c])).join(',')).join('\n')}` }),
    };
    const rowsPerSec: Record<string, number> = {};
    for (const [name, insert] of Object.entries(formats)) {
      await ch.client.command({ query: 'TRUNCATE TABLE exposures' });
      const started = process.hrtime.bigint();
      for (let i = 0; i < objects.length; i += batch) await insert(objects.slice(i, i + batch));
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      const [count] = await (await ch.client.query({ query: 'SELECT count() AS n FROM exposures', format: 'JSONEachRow' })).json<{ n: string }>();
      if (Number(count!.n) !== rows) throw new Error(`${name}: ${count!.n} rows stored, expected ${rows}`);
      rowsPerSec[name] = Math.round(rows / seconds);
      say(`sink ${name}: ${rowsPerSec[name]} rows/s`);
    }
    return { rows, batch, rowsPerSec };
  } finally {
    await ch.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}
