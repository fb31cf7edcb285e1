import type { ClickHouseClient } from '@clickhouse/client';
import { describe, expect, it } from 'vitest';
import { isPipelineError } from '../../services/common/errors.ts';
import { createLogger } from '../../services/common/logger.ts';
import { frame } from '../../services/common/wireFormat.ts';
import { ExactlyOnceWriter } from '../../services/sink/exactlyOnceWriter.ts';
import { addInOffsetOrder, nonFiniteRowError, refusedRowDeadLetter, withdrawNonFiniteRows } from '../../services/sink/nonFiniteRows.ts';
import type { Row, TableRows } from '../../services/sink/rowMappers.ts';

const at = (offset: number, values: Row): Row => ({ ...values, kafka_topic: 'exp.aggregates', kafka_partition: 0, kafka_offset: String(offset) });

describe('rows with numbers that are not finite', () => {
  it('are taken out of their table, whatever the column, and the other rows keep their order', () => {
    const tables: TableRows = new Map([
      ['aggregate_deltas', [at(1, { metric: 'a', sum: 1 }), at(2, { metric: 'b', sum: Number.NaN }), at(3, { metric: 'c', sum: 3, sum_squares: Number.NEGATIVE_INFINITY })]],
      ['aggregate_bucket_rows', [at(2, { sum: Number.POSITIVE_INFINITY })]],
      ['anomalies', [at(4, { evidence: 'NaN', halted: true, detected_at: 5 })]],
    ]);
    const refused = withdrawNonFiniteRows(tables);
    expect(refused.map((r) => [r.table, r.row.kafka_offset, r.columns])).toEqual([
      ['aggregate_deltas', '2', ['sum']],
      ['aggregate_deltas', '3', ['sum_squares']],
      ['aggregate_bucket_rows', '2', ['sum']],
    ]);
    expect(tables.get('aggregate_deltas')).toEqual([at(1, { metric: 'a', sum: 1 })]);
    expect(tables.has('aggregate_bucket_rows')).toBe(false);
    expect(tables.get('anomalies')).toHaveLength(1);
  });

  it('become a dead_letters row with reason NON_FINITE_NUMBER and the record coordinates, merged in offset order', () => {
    const [refused] = withdrawNonFiniteRows(new Map([['aggregate_deltas', [at(7, { experiment_id: 'e', variant_id: 'b', metric: 'revenue', sum: Number.POSITIVE_INFINITY })]]]));
    const error = nonFiniteRowError(refused!);
    expect(isPipelineError(error, 'NON_FINITE_NUMBER')).toBe(true);
    expect(error.message).toBe('aggregate_deltas row not stored: sum=Infinity is not a finite number (ClickHouse would have stored 0); row experiment_id=e, variant_id=b, metric=revenue');
    expect(error.context).toEqual({ table: 'aggregate_deltas', columns: 'sum', topic: 'exp.aggregates', partition: 0, offset: '7' });
    const value = frame(12, Buffer.from('body'));
    const letter = refusedRowDeadLetter(error, { topic: 'exp.aggregates', partition: 0, offset: '7', value, timestamp: '1764000000000' }, 1_764_000_009_000);
    expect(letter).toMatchObject({ reason: 'NON_FINITE_NUMBER', source_topic: 'exp.aggregates', source_partition: 0, source_offset: '7', schema_id: 12, payload_bytes: 9, payload_head: value.toString('hex'), source_time: 1_764_000_000_000, dead_letter_time: 1_764_000_009_000, kafka_offset: '7' });
    const tables: TableRows = new Map([['dead_letters', [at(3, { reason: 'X' }), at(9, { reason: 'Y' })]]]);
    addInOffsetOrder(tables, 'dead_letters', [letter]);
    expect(tables.get('dead_letters')!.map((r) => r.kafka_offset)).toEqual(['3', '7', '9']);
  });

  it('are refused by the writer itself, never inserted, if a caller ever passes one', async () => {
    const inserts: unknown[] = [];
    const client = {
      query: async () => ({ json: async () => [{ offset: '0', n: '0' }] }),
      insert: async (request: unknown) => void inserts.push(request),
    } as unknown as ClickHouseClient;
    const writer = new ExactlyOnceWriter(client, createLogger({ level: 'silent', name: 'test' }), () => true);
    const error = await writer.write('aggregate_deltas', 'exp.aggregates', 0, [at(1, { sum: 1 }), at(2, { sum: Number.NaN })], async () => {}).catch((err: unknown) => err);
    expect(isPipelineError(error, 'NON_FINITE_NUMBER')).toBe(true);
    expect(inserts).toEqual([]);
  });
});
