import { resolve } from 'node:path';
import { openClickHouse, type ClickHouseHandle } from '../../services/common/clickhouse.ts';
import { stackEndpoints } from './stack.ts';
import { uniqueName } from './unique.ts';

/**
 * A fresh database for a test: on CLICKHOUSE_URL, or in this process's chDB data directory
 * (chDB allows one path per process; vitest runs each file in its own process). chDB keeps
 * the selected database per engine, so in one file open, use and close handles one at a time.
 */
export async function openTestClickHouse(): Promise<ClickHouseHandle> {
  const stack = stackEndpoints();
  const database = uniqueName('test').replaceAll('-', '_');
  return openClickHouse({
    ...(stack.clickhouseUrl ? { url: stack.clickhouseUrl } : {}),
    username: process.env.CLICKHOUSE_USER ?? 'default',
    password: process.env.CLICKHOUSE_PASSWORD ?? '',
    database,
    dataDir: resolve(stack.dataDir, `chdb-${process.pid}`),
  });
}

/** Event rows stored by the sink, and how many distinct Kafka coordinates they came from. */
export async function storedEventCounts(ch: ClickHouseHandle): Promise<{ rows: string; distinct_offsets: string }> {
  const [counts] = await (await ch.client.query({
    query: `SELECT (SELECT count() FROM exposures) + (SELECT count() FROM metric_events) AS rows,
                   (SELECT uniqExact(kafka_partition, kafka_offset) FROM (SELECT kafka_partition, kafka_offset FROM exposures UNION ALL SELECT kafka_partition, kafka_offset FROM metric_events)) AS distinct_offsets`,
    format: 'JSONEachRow',
  })).json<{ rows: string; distinct_offsets: string }>();
  return counts!;
}
