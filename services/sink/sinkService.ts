import { setTimeout as sleep } from 'node:timers/promises';
import type { Consumer, Kafka } from 'kafkajs';
import { Counter, type Registry } from 'prom-client';
import type { ClickHouseHandle } from '../common/clickhouse.ts';
import type { Logger } from '../common/logger.ts';
import { applyMigrations } from '../common/migrations.ts';
import { ensureTopics } from '../common/topicAdmin.ts';
import type { TopicNames } from '../common/topics.ts';
import { ExactlyOnceWriter } from './exactlyOnceWriter.ts';
import { aggregateRows, anomalyRows, auditRows, controlRows, deadLetterRows, eventRows, type RowMapper, type TableRows } from './rowMappers.ts';

/**
 * The sink: pipeline topics into ClickHouse tables. Batches come from the broker by size and
 * time (the consumer asks for at least `minBatchBytes` or waits `maxBatchWaitMs`); each batch
 * becomes one insert per table, and the offset is committed only after every insert of the
 * batch succeeded. Exactly once per row: see ExactlyOnceWriter.
 */
export interface SinkOptions {
  kafka: Kafka;
  clickhouse: ClickHouseHandle;
  migrationsDir: string;
  topics: TopicNames;
  groupId: string;
  pseudonymKey: string;
  metrics: Registry;
  logger: Logger;
  sessionTimeoutMs?: number;
  minBatchBytes?: number;
  /** See config `sink.commitDelayMs`. */
  commitDelayMs?: number;
  maxBatchWaitMs?: number;
}

export async function startSink(options: SinkOptions): Promise<{ stop(): Promise<void> }> {
  const { topics } = options;
  const log = options.logger.child({ module: 'sink' });
  await applyMigrations(options.clickhouse.client, options.migrationsDir, log);
  await ensureTopics(options.kafka, topics, ['events', 'dlq', 'aggregates', 'anomalies', 'control', 'audit']);
  const mappers = new Map<string, RowMapper>([
    [topics.events, eventRows(options.pseudonymKey)],
    [topics.dlq, deadLetterRows],
    [topics.aggregates, aggregateRows],
    [topics.anomalies, anomalyRows],
    [topics.control, controlRows],
    [topics.audit, auditRows],
  ]);
  const rowsWritten = new Counter({ name: 'sink_rows_total', help: 'Rows inserted into ClickHouse, by table', labelNames: ['table'], registers: [options.metrics] });
  const retries = new Counter({ name: 'sink_insert_retries_total', help: 'Inserts retried because ClickHouse failed, by table', labelNames: ['table'], registers: [options.metrics] });
  let running = true;
  const writer = new ExactlyOnceWriter(options.clickhouse.client, log, () => running, (table) => retries.inc({ table }));
  const sessionTimeout = options.sessionTimeoutMs ?? 10_000;
  const consumer: Consumer = options.kafka.consumer({
    groupId: options.groupId,
    readUncommitted: false,
    sessionTimeout,
    heartbeatInterval: Math.floor(sessionTimeout / 3),
    minBytes: options.minBatchBytes ?? 64 * 1024,
    maxWaitTimeInMs: options.maxBatchWaitMs ?? 500,
  });
  consumer.on(consumer.events.GROUP_JOIN, ({ payload }) => {
    // Partitions can move: what another instance inserted meanwhile must be read again.
    writer.retainOnly(new Set(Object.entries(payload.memberAssignment).flatMap(([topic, partitions]) => partitions.map((p) => `${topic}:${p}`))));
  });
  await consumer.connect();
  for (const topic of mappers.keys()) await consumer.subscribe({ topic, fromBeginning: true });
  await consumer.run({
    autoCommit: false,
    eachBatchAutoResolve: false,
    eachBatch: async ({ batch, heartbeat, resolveOffset, isRunning }) => {
      if (batch.messages.length === 0 || !isRunning()) return;
      const mapper = mappers.get(batch.topic)!;
      const tables: TableRows = new Map();
      for (const m of batch.messages) mapper({ topic: batch.topic, partition: batch.partition, offset: m.offset, value: m.value }, tables);
      for (const [table, rows] of tables) rowsWritten.inc({ table }, await writer.write(table, batch.topic, batch.partition, rows, heartbeat));
      const last = batch.messages[batch.messages.length - 1]!.offset;
      if (options.commitDelayMs) await sleep(options.commitDelayMs);
      await consumer.commitOffsets([{ topic: batch.topic, partition: batch.partition, offset: (BigInt(last) + 1n).toString() }]);
      resolveOffset(last);
      await heartbeat();
    },
  });
  log.info({ groupId: options.groupId, topics: [...mappers.keys()], clickhouse: options.clickhouse.kind }, 'sink running');
  return {
    stop: async () => {
      running = false;
      await consumer.disconnect();
      await options.clickhouse.close();
    },
  };
}
