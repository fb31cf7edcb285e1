import { setTimeout as sleep } from 'node:timers/promises';
import type { Kafka } from 'kafkajs';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { ClickHouseHandle } from '../common/clickhouse.ts';
import { CONFIG_DEFAULTS } from '../common/config.ts';
import { UnreadableRecords, type InternalTopic, type Unreadable } from '../common/contracts/unreadablePolicy.ts';
import { PipelineError } from '../common/errors.ts';
import type { HealthReport } from '../common/health.ts';
import type { Keyring } from '../common/keyring.ts';
import type { Logger } from '../common/logger.ts';
import { LogRateLimiter } from '../common/logRateLimiter.ts';
import { applyMigrations } from '../common/migrations.ts';
import { disconnectWithin, incarnationConsumer, startSupervisedConsumer, type IncarnationContext } from '../common/supervisedConsumer.ts';
import { ensureTopics } from '../common/topicAdmin.ts';
import type { TopicNames } from '../common/topics.ts';
import { ExactlyOnceWriter } from './exactlyOnceWriter.ts';
import { definitionRows, statusRows } from './lifecycleRows.ts';
import { addInOffsetOrder, nonFiniteRowError, REFUSED_ROWS_TABLE, refusedRowDeadLetter, withdrawNonFiniteRows } from './nonFiniteRows.ts';
import { aggregateRows, anomalyRows, auditRows, controlRows, deadLetterRows, eventRows, lateEventRows, type KafkaRecordRef, type RowMapper, type TableRows } from './rowMappers.ts';

/**
 * The sink: pipeline topics into ClickHouse tables. Batches come from the broker by size and
 * time (the consumer asks for at least `minBatchBytes` or waits `maxBatchWaitMs`); each batch
 * becomes one insert per table, and the offset is committed only after every insert of the
 * batch succeeded. Exactly once per row: see ExactlyOnceWriter. A row holding a NaN or an
 * infinity is never stored (ClickHouse would make it 0): it is dead-lettered, see nonFiniteRows.
 */
export interface SinkOptions {
  kafka: Kafka;
  clickhouse: ClickHouseHandle;
  migrationsDir: string;
  topics: TopicNames;
  groupId: string;
  pseudonymKey: string;
  /** Whose signatures make a definition genuine: only those definitions are stored. */
  keyring: Keyring;
  metrics: Registry;
  logger: Logger;
  sessionTimeoutMs?: number;
  /** See config `health.stallMs`. */
  stallMs?: number;
  minBatchBytes?: number;
  /** See config `sink.commitDelayMs`. */
  commitDelayMs?: number;
  maxBatchWaitMs?: number;
}

export async function startSink(options: SinkOptions): Promise<{ stop(): Promise<void>; health(now?: number): HealthReport }> {
  const { topics } = options;
  const log = options.logger.child({ module: 'sink' });
  await applyMigrations(options.clickhouse.client, options.migrationsDir, log);
  await ensureTopics(options.kafka, topics, ['events', 'dlq', 'late', 'aggregates', 'anomalies', 'control', 'audit', 'definitions', 'state']);
  const byRole: [InternalTopic, RowMapper][] = [
    ['events', eventRows(options.pseudonymKey)],
    ['dlq', deadLetterRows],
    ['late', lateEventRows],
    ['aggregates', aggregateRows],
    ['anomalies', anomalyRows],
    ['control', controlRows],
    ['audit', auditRows],
    ['definitions', definitionRows(options.keyring, topics.definitions, log)],
    ['state', statusRows],
  ];
  const mappers = new Map(byRole.map(([role, mapper]) => [topics[role], mapper]));
  const roles = new Map(byRole.map(([role]) => [topics[role], role]));
  const unreadable = new UnreadableRecords(options.metrics, log);
  const rowsWritten = new Counter({ name: 'sink_rows_total', help: 'Rows inserted into ClickHouse, by table', labelNames: ['table'], registers: [options.metrics] });
  const retries = new Counter({ name: 'sink_insert_retries_total', help: 'Inserts retried because ClickHouse failed, by table', labelNames: ['table'], registers: [options.metrics] });
  const refusedRows = new Counter({ name: 'sink_rows_refused_total', help: 'Rows not stored because they held a number that is not finite (dead-lettered instead), by table and reason', labelNames: ['table', 'reason'], registers: [options.metrics] });
  const refusedLog = new LogRateLimiter(log);
  let running = true;
  // The writer retries a failing ClickHouse for as long as the sink runs; a replaced consumer
  // incarnation stops the retries of the one it replaces.
  let current: IncarnationContext | undefined;
  const writer = new ExactlyOnceWriter(options.clickhouse.client, log, () => running && current?.ended() === false, (table) => retries.inc({ table }));
  const lag = new Gauge({ name: 'sink_consumer_lag', help: 'Records not yet stored in ClickHouse, by topic and partition', labelNames: ['topic', 'partition'], registers: [options.metrics] });
  const sessionTimeout = options.sessionTimeoutMs ?? CONFIG_DEFAULTS.kafka.sessionTimeoutMs;
  const topicsIn = [...mappers.keys()];
  /** A batch's rows per table; a row holding a NaN or an infinity is replaced by its dead letter. */
  const batchRows = (topic: string, partition: number, messages: { offset: string; value: Buffer | null; timestamp: string }[]): TableRows => {
    const mapper = mappers.get(topic)!;
    const tables: TableRows = new Map();
    const records = messages.map((m) => ({ topic, partition, offset: m.offset, value: m.value, timestamp: m.timestamp }));
    const now = Date.now();
    for (const record of records) {
      const failure = mapper(record, tables);
      if (!failure) continue;
      // Never a stalled partition: the record is skipped, or its bytes kept as a dead letter row.
      if (unreadable.handle(roles.get(topic)!, record, failure) === 'dead-letter') {
        addInOffsetOrder(tables, REFUSED_ROWS_TABLE, [refusedRowDeadLetter(unreadableRecordError(record, failure), record, now)]);
      }
    }
    const refused = withdrawNonFiniteRows(tables);
    if (refused.length > 0) {
      const byOffset = new Map(records.map((r) => [r.offset, r]));
      const letters = refused.map((r) => {
        const error = nonFiniteRowError(r);
        refusedRows.inc({ table: r.table, reason: error.code });
        refusedLog.error(`${error.code}:${r.table}`, { code: error.code, ...error.context }, `sink.row_refused: ${error.message}`);
        return refusedRowDeadLetter(error, byOffset.get(String(r.row.kafka_offset))!, now);
      });
      addInOffsetOrder(tables, REFUSED_ROWS_TABLE, letters);
    }
    return tables;
  };
  const loop = await startSupervisedConsumer({
    name: `${options.groupId} loop`,
    kafka: options.kafka,
    groupId: options.groupId,
    topics: topicsIn,
    logger: log,
    ...(options.stallMs ? { stallMs: options.stallMs } : {}),
    onLag: ({ topic, partition }, n) => (n === undefined ? lag.remove({ topic, partition: String(partition) }) : lag.set({ topic, partition: String(partition) }, n)),
    startIncarnation: async (context) => {
      current = context;
      // What another instance (or an earlier incarnation) inserted is read again from ClickHouse.
      writer.retainOnly(new Set());
      // Where this incarnation committed each partition to, so a commit never goes back.
      const committedTo = new Map<string, bigint>();
      const commitPast = async (topic: string, partition: number, next: bigint) => {
        const key = `${topic}:${partition}`;
        if ((committedTo.get(key) ?? -1n) >= next) return;
        committedTo.set(key, next);
        await consumer.commitOffsets([{ topic, partition, offset: next.toString() }]);
      };
      const consumer = incarnationConsumer(options.kafka, {
        groupId: options.groupId,
        readUncommitted: false,
        sessionTimeout,
        heartbeatInterval: Math.floor(sessionTimeout / 3),
        minBytes: options.minBatchBytes ?? 64 * 1024,
        maxWaitTimeInMs: options.maxBatchWaitMs ?? 500,
      }, context, { commitPastMarkers: commitPast });
      consumer.on(consumer.events.GROUP_JOIN, ({ payload }) => {
        // Partitions can move: what another instance inserted meanwhile must be read again.
        writer.retainOnly(new Set(Object.entries(payload.memberAssignment).flatMap(([topic, partitions]) => partitions.map((p) => `${topic}:${p}`))));
      });
      try {
        await consumer.connect();
        for (const topic of topicsIn) await consumer.subscribe({ topic, fromBeginning: true });
        await consumer.run({
          autoCommit: false,
          eachBatchAutoResolve: false,
          eachBatch: (payload) => context.track(async () => {
            const { batch, heartbeat, resolveOffset, isRunning } = payload;
            if (batch.messages.length === 0 || !isRunning() || context.ended()) return;
            // Past the markers and aborted records that end the fetch too.
            const next = BigInt(batch.lastOffset()) + 1n;
            try {
              const tables = batchRows(batch.topic, batch.partition, batch.messages);
              for (const [table, rows] of tables) rowsWritten.inc({ table }, await writer.write(table, batch.topic, batch.partition, rows, heartbeat));
              if (options.commitDelayMs) await sleep(options.commitDelayMs);
              await commitPast(batch.topic, batch.partition, next);
            } catch (err) {
              // Rows already inserted are skipped by offset when the batch is read again.
              log.warn({ err, topic: batch.topic, partition: batch.partition, offset: batch.messages[0]!.offset }, 'batch failed; replacing the consumer');
              context.fail(err);
              return;
            }
            resolveOffset(batch.messages[batch.messages.length - 1]!.offset);
            context.progress.advanced({ topic: batch.topic, partition: batch.partition }, next, BigInt(batch.highWatermark));
            await heartbeat();
          }),
        });
      } catch (err) {
        await consumer.disconnect().catch(() => {});
        throw err;
      }
      return {
        // A failed incarnation's batch in hand stops retrying (ended) and is waited for, so it
        // never inserts beside the next one; a graceful stop lets it finish and commit.
        stop: async (graceful) => {
          if (!graceful) await context.settled();
          await disconnectWithin(consumer, graceful ? 60_000 : 10_000, log);
        },
      };
    },
  });
  log.info({ groupId: options.groupId, topics: [...mappers.keys()], clickhouse: options.clickhouse.kind }, 'sink running');
  return {
    health: loop.health,
    stop: async () => {
      running = false;
      await loop.stop();
      refusedLog.flush();
      unreadable.flush();
      await options.clickhouse.close();
    },
  };
}

/** The reason and message of the dead_letters row that keeps an unreadable record's bytes. */
function unreadableRecordError(record: KafkaRecordRef, failure: Unreadable): PipelineError {
  return new PipelineError('UNREADABLE_RECORD', `${failure.reason}: ${failure.detail}`, { context: { topic: record.topic, partition: record.partition, offset: record.offset } });
}
