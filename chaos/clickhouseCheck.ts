import type { ClickHouseClient } from '../services/common/clickhouse.ts';

/**
 * "Every ClickHouse table holds each source record exactly once": for each table the sink
 * fills, the rows stored per Kafka record (kafka_partition, kafka_offset) against the rows
 * that record must give (one per event, dead letter, anomaly, command or audit record; one
 * per variant and metric of an aggregate delta; one per minute bucket). Fewer is lost, more
 * is duplicated. The event tables are also checked on their lineage: each raw record's
 * coordinates (source_topic, source_partition, source_offset) at most once.
 */
export interface TableExpectation {
  table: string;
  topic: string;
  /** `partition:offset` -> rows that record must give. */
  rowsPerRecord: Map<string, number>;
  /** Also check source_topic/partition/offset uniqueness (tables of exp.events). */
  lineage?: boolean;
}

export interface TableCheck {
  table: string;
  expectedRows: number;
  rows: number;
  missingRows: number;
  extraRows: number;
  /** Rows whose raw source coordinates another row already has. */
  lineageDuplicates: number;
  samples: string[];
}

export async function checkTables(client: ClickHouseClient, expectations: readonly TableExpectation[]): Promise<TableCheck[]> {
  const checks: TableCheck[] = [];
  for (const e of expectations) {
    const result = await client.query({
      query: `SELECT kafka_topic AS t, kafka_partition AS p, toString(kafka_offset) AS o, count() AS n FROM ${e.table} GROUP BY t, p, o`,
      format: 'JSONEachRow',
    });
    const stored = new Map<string, number>();
    const samples: string[] = [];
    let rows = 0;
    let extraRows = 0;
    for (const r of await result.json<{ t: string; p: number; o: string; n: string }>()) {
      const n = Number(r.n);
      rows += n;
      if (r.t !== e.topic) {
        extraRows += n;
        if (samples.length < 5) samples.push(`${e.table}: ${n} row(s) from ${r.t}:${r.p}@${r.o}, a topic this table does not take`);
        continue;
      }
      stored.set(`${r.p}:${r.o}`, n);
    }
    let expectedRows = 0;
    let missingRows = 0;
    for (const [record, want] of e.rowsPerRecord) {
      expectedRows += want;
      const have = stored.get(record) ?? 0;
      if (have < want) {
        missingRows += want - have;
        if (samples.length < 5) samples.push(`${e.table}: ${e.topic}:${record} has ${have} row(s), expected ${want}`);
      } else if (have > want) {
        extraRows += have - want;
        if (samples.length < 5) samples.push(`${e.table}: ${e.topic}:${record} has ${have} row(s), expected ${want}`);
      }
    }
    for (const [record, have] of stored) {
      if (e.rowsPerRecord.has(record)) continue;
      extraRows += have;
      if (samples.length < 5) samples.push(`${e.table}: ${have} row(s) from ${e.topic}:${record}, which is not a committed record of the topic`);
    }
    let lineageDuplicates = 0;
    if (e.lineage) {
      const lineage = await client.query({ query: `SELECT count() - uniqExact(source_topic, source_partition, source_offset) AS d FROM ${e.table}`, format: 'JSONEachRow' });
      lineageDuplicates = Number((await lineage.json<{ d: string }>())[0]?.d ?? 0);
      if (lineageDuplicates > 0 && samples.length < 5) samples.push(`${e.table}: ${lineageDuplicates} row(s) repeat a raw record's source coordinates`);
    }
    checks.push({ table: e.table, expectedRows, rows, missingRows, extraRows, lineageDuplicates, samples });
  }
  return checks;
}
