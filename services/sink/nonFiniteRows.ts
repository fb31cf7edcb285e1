import { schemaIdOf } from '../common/contracts/codec.ts';
import { PipelineError } from '../common/errors.ts';
import type { KafkaRecordRef, Row, TableRows } from './rowMappers.ts';

/**
 * The sink's poison-row policy for numbers. Rows travel to ClickHouse as JSON, where NaN and
 * ±∞ become null, and ClickHouse stores a null in a non-Nullable column as 0: a non-finite
 * number would be stored as a plausible, wrong 0 and nobody would know. So a row holding one
 * is an error (NON_FINITE_NUMBER): it is not inserted; in its place the dead_letters table
 * gets a row with that reason, the Kafka coordinates of the record it came from, the record's
 * size and first bytes, and which columns held what. The record's other rows are stored as
 * usual (for an aggregate delta: the other variants' and metrics' rows), which is what the
 * guard and the admin API do with the same delta (services/common/experimentTotals.ts), so
 * the stored sums and the live ones leave out the same part.
 */
export interface RefusedRow {
  table: string;
  row: Row;
  /** The columns whose number is NaN or infinite. */
  columns: string[];
}

export const REFUSED_ROWS_TABLE = 'dead_letters';

export function nonFiniteColumns(row: Row): string[] {
  let columns: string[] | undefined;
  // for-in, not Object.entries: that made an array per column of every row the sink writes (twice).
  for (const column in row) {
    const value = row[column];
    if (typeof value === 'number' && !Number.isFinite(value)) (columns ??= []).push(column);
  }
  return columns ?? [];
}

/** Takes every row holding a non-finite number out of `tables`, in place, and returns them. */
export function withdrawNonFiniteRows(tables: TableRows): RefusedRow[] {
  const refused: RefusedRow[] = [];
  for (const [table, rows] of tables) {
    let kept: Row[] | undefined;
    rows.forEach((row, i) => {
      const columns = nonFiniteColumns(row);
      if (columns.length === 0) {
        kept?.push(row);
        return;
      }
      kept ??= rows.slice(0, i);
      refused.push({ table, row, columns });
    });
    if (kept === undefined) continue;
    if (kept.length === 0) tables.delete(table);
    else tables.set(table, kept);
  }
  return refused;
}

/** The error a refused row is: logged, counted, and stored as the reason of its dead letter. */
export function nonFiniteRowError(refused: RefusedRow): PipelineError {
  const { table, row, columns } = refused;
  const values = columns.map((c) => `${c}=${String(row[c])}`).join(', ');
  const identity = Object.entries(row)
    .filter(([column, value]) => typeof value === 'string' && !column.startsWith('kafka_') && value.length <= 100)
    .map(([column, value]) => `${column}=${String(value)}`)
    .join(', ');
  return new PipelineError('NON_FINITE_NUMBER', `${table} row not stored: ${values} is not a finite number (ClickHouse would have stored 0); row ${identity}`.slice(0, 1_000), {
    context: { table, columns: columns.join(','), topic: String(row.kafka_topic), partition: Number(row.kafka_partition), offset: String(row.kafka_offset) },
  });
}

/** The dead_letters row recording a refused row, from the Kafka record it was mapped from. */
export function refusedRowDeadLetter(error: PipelineError, record: KafkaRecordRef, now: number): Row {
  return {
    reason: error.code,
    message: error.message,
    source_topic: record.topic,
    source_partition: record.partition,
    source_offset: record.offset,
    schema_id: schemaIdOf(record.value),
    payload_bytes: record.value?.length ?? 0,
    payload_head: record.value ? record.value.subarray(0, 32).toString('hex') : '',
    source_time: record.timestamp === undefined ? now : Number(record.timestamp),
    dead_letter_time: now,
    kafka_topic: record.topic,
    kafka_partition: record.partition,
    kafka_offset: record.offset,
  };
}

/**
 * Adds rows to a table keeping one partition's rows in offset order, the order the
 * exactly-once writer relies on (its rows are all from the batch's one topic partition).
 */
export function addInOffsetOrder(tables: TableRows, table: string, rows: Row[]): void {
  const all = [...(tables.get(table) ?? []), ...rows];
  // Array.prototype.sort is stable: rows of one offset keep their order.
  all.sort((a, b) => compareOffsets(a.kafka_offset, b.kafka_offset));
  tables.set(table, all);
}

function compareOffsets(a: Row[string] | undefined, b: Row[string] | undefined): number {
  const x = BigInt(a as string);
  const y = BigInt(b as string);
  return x < y ? -1 : x > y ? 1 : 0;
}
