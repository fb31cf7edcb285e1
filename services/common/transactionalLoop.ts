import type { Kafka, KafkaMessage, Message, Producer } from 'kafkajs';
import { CONFIG_DEFAULTS } from './config.ts';
import { PipelineError } from './errors.ts';
import { fencePreviousOwner, transactionScope, type TransactionScope } from './fencing.ts';
import { retriedWhileRetriable } from './retriable.ts';
import type { LagListener } from './consumerProgress.ts';
import type { HealthSource } from './health.ts';
import type { Logger } from './logger.ts';
import { chunksUnder, DEFAULT_MAX_REQUEST_BYTES, groupByTopic } from './outputChunks.ts';
import { PartitionLanes } from './partitionLanes.ts';
import { disconnectWithin, incarnationConsumer, startSupervisedConsumer, type IncarnationContext } from './supervisedConsumer.ts';

/**
 * Consume-transform-produce, exactly once: for each batch fetched from one partition the
 * outputs and the consumer offset are committed in one Kafka transaction. A crash at any
 * point either commits both or neither; readers use read_committed.
 *
 * Each input partition has its own transactional producer, with a transactional id derived
 * from the partition (as Kafka Streams' first exactly-once mode does). Whichever instance
 * takes a partition over, after a crash or a rebalance, initialises that id and so fences
 * the previous owner and aborts the transaction it left open. kafkajs cannot send the group
 * metadata that would allow one producer per instance (KIP-447), so this is what keeps a
 * zombie from committing duplicates.
 *
 * Faults heal by replacement, never by patching a client in an unknown state: any failure of
 * a batch (a transaction that failed, timed out or was fenced, a restore that failed, a
 * crashed consumer) ends the incarnation. Its producers are closed, its partitions' state is
 * dropped (`revoked`), and a fresh consumer rejoins the group, fresh producers fence and
 * abort whatever was left open, and state is restored from the changelogs before the next
 * batch. Whatever was not committed is read again, so exactly once holds through all of it.
 *
 * A punctuation (`punctuate`, Kafka Streams' wall-clock punctuator) is work done on time
 * rather than on input: every `everyMs` each assigned partition is prepared if it was not
 * yet (its stores restored: a partition without new input still gets its turn) and handed to
 * `run`, in the partition's lane (./partitionLanes.ts), so never beside one of its batches.
 * Its outputs and the stores' changelog go out in one transaction of the partition's producer,
 * without consumer offsets; a failure ends the incarnation like a failed batch.
 */
export interface InputRecord {
  topic: string;
  partition: number;
  message: KafkaMessage;
}

export interface OutputRecord {
  topic: string;
  message: Message;
}

/** What `process` returns when it took only the first `consumed` records of the batch. */
export interface PartlyConsumed {
  outputs: OutputRecord[];
  consumed: number;
}

export interface BatchCommitted {
  topic: string;
  partition: number;
  records: number;
  outputs: number;
  /** Records still behind on this partition after this batch (up to the end the fetch saw). */
  lag: number;
  durationMs: number;
}

/**
 * State the loop keeps with each input partition (services/common/changeloggedStore.ts):
 * restored before the partition's first batch, its changelog records sent in each batch's
 * transaction, dropped when the partition goes or the incarnation ends.
 */
export interface PartitionedStore {
  /** The compacted topic whose partition p holds input partition p's state (written in the loop's transactions). */
  readonly changelogTopic: string;
  /** Restores the given partitions in one read of the changelog, each through its own producer (already fencing any previous owner). */
  restoreAll(producers: Map<number, Producer>): Promise<void>;
  takeChangelog(partition: number): OutputRecord[];
  drop(partition: number): void;
}

export interface Punctuation {
  /** Wall-clock period (ms) between rounds; a round still running when the next is due delays it. Only partitions the consumer has caught up on (lag 0) are punctuated. */
  everyMs: number;
  /**
   * Outputs for one owned input partition at wall-clock `now`; state is read and written
   * through `stores` as in a batch. Throwing ends the incarnation.
   */
  run(partition: number, now: number): Promise<OutputRecord[]>;
  /** Told after each partition's punctuation has committed (or had nothing to commit). */
  onDone?(event: PunctuationDone): void;
}

export interface PunctuationDone {
  topic: string;
  partition: number;
  outputs: number;
  durationMs: number;
}

export interface TransactionalLoopOptions {
  kafka: Kafka;
  groupId: string;
  topics: string[];
  /** Prefix of the per-partition transactional ids: `<prefix>-<topic>-<partition>`. */
  transactionalIdPrefix: string;
  /**
   * Every topic `process`, `punctuate` and `prepare` write (the stores' changelogs are added):
   * a partition's new owner ends whatever its previous owner left open on each of their
   * partitions before it reads anything (./fencing.ts). An output to any other topic fails
   * its batch.
   */
  outputTopics: readonly string[];
  logger: Logger;
  /** Changelogged state of the input partitions (partition p of each changelog holds input partition p's state). */
  stores?: PartitionedStore[];
  /**
   * Called once per partition each time this instance is given it, before its first batch,
   * with the partition's producer (already fencing any previous owner), after `stores` are restored.
   */
  prepare?(topic: string, partition: number, producer: Producer): Promise<void>;
  /** Told the input partitions the group gave this instance, each time it joins (before their first batch). */
  onAssigned?(partitions: { topic: string; partition: number }[]): void;
  /** Called when a partition is taken away, after `stores` dropped it. */
  revoked?(topic: string, partition: number): void;
  /**
   * Turns a batch into outputs; throwing aborts the batch, which is then fetched again. It may
   * take only the first `consumed` records (ingest holds back an input that runs ahead in
   * event time): the offset committed is then that of the first record left, the rest is
   * fetched again, and a partition of which nothing was taken is paused for `holdBackMs`.
   */
  process(records: InputRecord[]): Promise<OutputRecord[] | PartlyConsumed>;
  /** How long a partition whose batch was left entirely (consumed 0) is paused before it is fetched again; default 100 ms. */
  holdBackMs?: number;
  /** Work on wall-clock time for each owned partition, committed like a batch (see above). */
  punctuate?: Punctuation;
  onCommitted?(event: BatchCommitted): void;
  /** Largest number of records handled in one transaction. */
  maxBatchRecords?: number;
  /** Outputs are sent in requests below this size (the broker refuses batches over message.max.bytes, 1 MiB by default). */
  maxRequestBytes?: number;
  /** Consumer group session timeout: how long a crashed instance holds its partitions. */
  sessionTimeoutMs?: number;
  /** Health fails after this long without progress while input waits (config `health.stallMs`). */
  stallMs?: number;
  /** Told each owned partition's lag after every batch and every lag check; undefined when it is given up. */
  onLag?: LagListener;
}

/**
 * Three partitions' batches in flight at once: each partition has its own producer and lane,
 * and one at a time the loop mostly waits on each transaction's round trips (three at once ran
 * ingest alone 25 % faster). With three, one clean-clone chaos drill of four once had ingest
 * write 9 raw records twice around a broker kill. Two causes are closed since (./fencing.ts):
 * a committed-offset read before fencing, and transactions the restarting broker leaves open
 * (more transactions in flight at the kill made both likelier; they were there with one too).
 */
const PARTITIONS_CONCURRENTLY = 3;
const concurrentTransactions = (err: { type?: string }) => err.type === 'CONCURRENT_TRANSACTIONS';
/**
 * 2 MiB rather than kafkajs' 10: a fetch's records, and the response buffer they are views of,
 * live until its batches have committed, and with three batches in flight ingest peaked at
 * 526 MiB on a million raw events with 10 MiB fetches, 341 MiB with 2 MiB ones, at the same or
 * better speed (1 MiB: 302 MiB, but a quarter slower). Measured with `BENCH_ONLY=ingest`.
 */
const FETCH_MAX_BYTES = 2 * 1024 * 1024;

export interface RunningLoop extends HealthSource {
  /** Finishes the batch in hand, commits it, leaves the group. */
  stop(): Promise<void>;
}

export async function startTransactionalLoop(options: TransactionalLoopOptions): Promise<RunningLoop> {
  return startSupervisedConsumer({
    name: `${options.groupId} loop`,
    kafka: options.kafka,
    groupId: options.groupId,
    topics: options.topics,
    logger: options.logger,
    ...(options.stallMs ? { stallMs: options.stallMs } : {}),
    ...(options.onLag ? { onLag: options.onLag } : {}),
    startIncarnation: (context) => startIncarnation(options, context),
  });
}

async function startIncarnation(options: TransactionalLoopOptions, context: IncarnationContext): Promise<{ stop(graceful: boolean): Promise<void> }> {
  const { kafka, logger } = options;
  const sessionTimeout = options.sessionTimeoutMs ?? CONFIG_DEFAULTS.kafka.sessionTimeoutMs;
  const consumer = incarnationConsumer(kafka, {
    groupId: options.groupId,
    readUncommitted: false,
    maxWaitTimeInMs: 250,
    maxBytes: FETCH_MAX_BYTES,
    sessionTimeout,
    heartbeatInterval: Math.floor(sessionTimeout / 3),
    retry: { initialRetryTime: 100, maxRetryTime: 5_000, retries: 10 },
  }, context, {
    // In the partition's lane, with an offsets-only transaction (no marker on any data topic).
    commitPastMarkers: (topic, partition, next) => {
      const key = keyOf(topic, partition);
      return lanes.run(key, async () => {
        if (context.ended() || !assigned.has(key)) return;
        const producer = await preparedProducer(topic, partition);
        if ((resumeAt.get(key) ?? 0n) >= next) return;
        await commit(producer, partition, [], { topic, offset: next });
        resumeAt.set(key, next);
      });
    },
  });
  const producers = new Map<string, Producer>();
  const prepared = new Set<string>();
  const stores = options.stores ?? [];
  const admin = kafka.admin();
  let adminConnected: Promise<void> | undefined;
  const connectedAdmin = async () => {
    adminConnected ??= admin.connect();
    await adminConnected;
    return admin;
  };
  // What each partition's transactions may write, looked up once per incarnation.
  const writable = new Set([...options.outputTopics, ...stores.map((store) => store.changelogTopic)]);
  let scope: Promise<TransactionScope> | undefined;
  const scopeOfTransactions = () => (scope ??= connectedAdmin().then((client) => transactionScope(client, [...writable], options.groupId)));
  const keyOf = (topic: string, partition: number) => `${topic}:${partition}`;
  const partitionOf = (key: string) => ({ topic: key.slice(0, key.lastIndexOf(':')), partition: Number(key.slice(key.lastIndexOf(':') + 1)) });

  // Connected once: a joint restore, a batch and a punctuation may ask for the same producer at once, and none may get it before it is connected and fencing.
  const connecting = new Map<string, Promise<void>>();
  const producerFor = async (topic: string, partition: number): Promise<Producer> => {
    const key = keyOf(topic, partition);
    let producer = producers.get(key);
    if (!producer) {
      const created = kafka.producer({
        transactionalId: `${options.transactionalIdPrefix}-${topic}-${partition}`,
        idempotent: true,
        maxInFlightRequests: 1,
        transactionTimeout: 30_000,
        // Right after a commit the broker may answer CONCURRENT_TRANSACTIONS while it writes
        // the markers; a short first retry keeps that from costing a tenth of a second a batch.
        // Unbounded (kafkajs warns that bounded retries can break idempotence): a broker that
        // stays away is the watchdog's to handle, which replaces the stuck incarnation.
        retry: { initialRetryTime: 10, maxRetryTime: 2_000, retries: Number.MAX_SAFE_INTEGER },
      });
      producers.set(key, created);
      // Connected, then fencing the partition's previous owner and ending what it left open, before anyone uses it.
      connecting.set(key, Promise.all([created.connect(), scopeOfTransactions()]).then(async ([, writes]) => {
        const ended = await fencePreviousOwner(created, writes);
        logger.debug({ topic, partition, ended }, 'took the partition over: fenced its previous owner and ended what it left open');
      }));
      producer = created;
    }
    await connecting.get(key);
    return producer;
  };
  // Where each partition's committed work ends: read once this incarnation's producer has
  // fenced the previous owner (see preparedProducer), then moved on by each commit of its own.
  // Records below it are never processed again, whatever offset kafkajs fetches from: after a
  // rebalance it re-reads the committed offsets of the partitions this consumer keeps too, and
  // that read does not wait for a transaction that has committed but whose markers are still
  // being written (no requireStable), so it can return the offset before this instance's last
  // batch, whose effect the kept state already holds.
  const resumeAt = new Map<string, bigint>();
  const committedOffset = async (topic: string, partition: number): Promise<bigint> => {
    const [entry] = await (await connectedAdmin()).fetchOffsets({ groupId: options.groupId, topics: [topic] });
    const offset = entry?.partitions.find((p) => p.partition === partition)?.offset;
    return offset === undefined || offset === '-1' ? 0n : BigInt(offset);
  };
  const lanes = new PartitionLanes();
  // The partitions the group gave this consumer; empty while it rebalances, so a punctuation
  // does not take up (and fence the new owner of) a partition that is going elsewhere.
  let assigned = new Set<string>();
  const release = (key: string) => {
    resumeAt.delete(key);
    restoring.delete(key);
    const { topic, partition } = partitionOf(key);
    // Dropped even if its restore did not finish: whatever it holds is not known to be committed.
    for (const store of stores) store.drop(partition);
    if (prepared.delete(key)) options.revoked?.(topic, partition);
    const producer = producers.get(key);
    producers.delete(key);
    connecting.delete(key);
    return producer?.disconnect().catch(() => {});
  };

  // The first partition prepared restores, with its own, the stores of every other assigned
  // partition of its topic not yet prepared: one read of each changelog instead of one per
  // partition. Each partition is still fenced and read to its end by its own producer.
  const restoring = new Map<string, { done: Promise<void> }>();
  const restoreStores = (topic: string, partition: number): Promise<void> => {
    if (stores.length === 0) return Promise.resolve();
    const key = keyOf(topic, partition);
    const pending = restoring.get(key);
    if (pending) return pending.done;
    const keys = [key, ...[...assigned].filter((k) => k !== key && partitionOf(k).topic === topic && !prepared.has(k) && !restoring.has(k))];
    const together = { done: Promise.resolve() };
    for (const k of keys) restoring.set(k, together);
    together.done = (async () => {
      const producersOf = new Map(await Promise.all(keys.map(async (k) => [partitionOf(k).partition, await producerFor(topic, partitionOf(k).partition)] as const)));
      for (const store of stores) await store.restoreAll(producersOf);
      // A partition taken away meanwhile (released) keeps no state here.
      for (const k of keys) if (restoring.get(k) !== together) for (const store of stores) store.drop(partitionOf(k).partition);
    })();
    return together.done;
  };

  /** The partition's producer, its stores restored and `prepare` called the first time. */
  const preparedProducer = async (topic: string, partition: number): Promise<Producer> => {
    const key = keyOf(topic, partition);
    const producer = await producerFor(topic, partition);
    if (!prepared.has(key)) {
      await restoreStores(topic, partition);
      await options.prepare?.(topic, partition, producer);
      // The consumer read its starting offset when the partition was assigned, which can be
      // before the previous owner's last transaction (offsets included) completed: kafkajs'
      // offset fetch does not wait for pending transactional commits (Kafka's requireStable).
      // The producer above fenced that owner as it connected (./fencing.ts), which makes the
      // broker finish its transaction first, and ended whatever it left open, so the
      // committed offset read now is final, and records below it are done (their effect is in
      // the restored state).
      resumeAt.set(key, await committedOffset(topic, partition));
      prepared.add(key);
      restoring.delete(key);
    }
    return producer;
  };

  /** Outputs, the stores' changelog and (for a batch) the consumer offset, in one transaction. */
  const commit = async (producer: Producer, partition: number, outputs: OutputRecord[], offsets?: { topic: string; offset: bigint }) => {
    for (const store of stores) outputs.push(...store.takeChangelog(partition));
    if (outputs.length === 0 && !offsets) return;
    // A topic outside the declared ones would not be covered when a successor ends what this owner left open.
    const undeclared = outputs.find((output) => !writable.has(output.topic));
    if (undeclared) throw new PipelineError('UNDECLARED_OUTPUT_TOPIC', `${options.groupId}: an output to ${undeclared.topic}, which is not among the loop's outputTopics (${[...writable].join(', ')})`, { context: { topic: undeclared.topic, groupId: options.groupId } });
    const transaction = await producer.transaction();
    try {
      for (const chunk of chunksUnder(outputs, options.maxRequestBytes ?? DEFAULT_MAX_REQUEST_BYTES)) {
        await transaction.sendBatch({ topicMessages: groupByTopic(chunk) });
      }
      // With no records before them (an offsets-only transaction right after another) the
      // offsets meet CONCURRENT_TRANSACTIONS, which kafkajs does not retry there; any other
      // failure ends the incarnation as before.
      if (offsets) await retriedWhileRetriable(() => transaction.sendOffsets({ consumerGroupId: options.groupId, topics: [{ topic: offsets.topic, partitions: [{ partition, offset: offsets.offset.toString() }] }] }), { only: concurrentTransactions });
      await transaction.commit();
    } catch (err) {
      await transaction.abort().catch((abortErr: unknown) => logger.warn({ err: abortErr }, 'abort after a failed transaction also failed'));
      throw err;
    }
  };

  consumer.on(consumer.events.REBALANCING, () => {
    assigned = new Set();
  });
  consumer.on(consumer.events.GROUP_JOIN, ({ payload }) => {
    assigned = new Set(Object.entries(payload.memberAssignment).flatMap(([topic, partitions]) => partitions.map((p) => keyOf(topic, p))));
    // In the partition's lane: a punctuation under way finishes before its state goes.
    for (const key of new Set([...prepared, ...producers.keys()])) if (!assigned.has(key)) void lanes.run(key, async () => (assigned.has(key) ? undefined : release(key)));
    logger.info({ assigned: [...assigned] }, 'partitions assigned');
    options.onAssigned?.([...assigned].map(partitionOf));
    // Taken up at once, not at the partition's first input: fencing ends what a previous owner
    // left open on the output partitions (./fencing.ts), which holds back their readers until
    // then, however quiet this input partition is.
    for (const key of assigned) {
      // Tracked, so that an incarnation ending waits for it rather than leave a producer behind.
      void context
        .track(() =>
          lanes.run(key, async () => {
            if (!context.ended() && assigned.has(key) && !prepared.has(key)) await preparedProducer(partitionOf(key).topic, partitionOf(key).partition);
          }),
        )
        .catch((err: unknown) => {
          logger.warn({ err, partition: key }, 'taking up an assigned partition failed; replacing consumer, producers and state');
          context.fail(err);
        });
    }
  });

  const punctuation = options.punctuate;
  const punctuatePartition = async (punctuation: Punctuation, key: string): Promise<boolean> => {
    if (context.ended() || !assigned.has(key)) return !context.ended();
    const { topic, partition } = partitionOf(key);
    // Only a caught-up partition is judged at the wall-clock time: while a backlog (after an
    // outage, say) is still being read, the state is behind the clock, and time-based checks
    // would see a silence that is only the backlog's.
    const lag = context.progress.lagOf({ topic, partition });
    if (lag !== 0) {
      logger.debug({ topic, partition, lag }, 'punctuation waits for the partition to catch up');
      return true;
    }
    const started = Date.now();
    let outputs: OutputRecord[];
    try {
      const producer = await preparedProducer(topic, partition);
      outputs = await punctuation.run(partition, started);
      await commit(producer, partition, outputs);
    } catch (err) {
      logger.warn({ err, topic, partition }, 'punctuation failed; replacing consumer, producers and state');
      context.fail(err);
      return false;
    }
    punctuation.onDone?.({ topic, partition, outputs: outputs.length, durationMs: Date.now() - started });
    return true;
  };
  let round: Promise<void> | undefined;
  const timer = punctuation && setInterval(() => {
    if (round || context.ended()) return;
    round = context.track(async () => {
      for (const key of [...assigned]) if (!(await lanes.run(key, () => punctuatePartition(punctuation, key)))) return;
    })
      .catch((err: unknown) => context.fail(err))
      .finally(() => (round = undefined));
  }, punctuation.everyMs);

  const maxBatch = options.maxBatchRecords ?? 5_000;
  const stopIncarnation = async (graceful: boolean) => {
    // No new punctuation; on a graceful stop the one under way commits before its producer goes.
    clearInterval(timer);
    if (graceful) await round;
    // On a graceful stop the batch in hand commits first (disconnect waits for it). On a
    // failure, closing the producers first makes a request stuck on a dead broker give up;
    // the batch in hand is then waited for, so it cannot touch the state the next
    // incarnation restores; and a consumer that cannot leave a dead broker is left behind.
    if (!graceful) {
      await Promise.all([...producers.keys()].map(release));
      await context.settled();
    }
    await disconnectWithin(consumer, graceful ? 60_000 : 10_000, logger);
    await Promise.all([...new Set([...prepared, ...producers.keys()])].map(release));
    if (adminConnected) await admin.disconnect().catch(() => {});
  };

  /**
   * One transaction's worth of a fetched batch (run in the partition's lane): its outputs once
   * committed and how many of `messages` are done; undefined once the incarnation is done.
   */
  const processChunk = async (batch: { topic: string; partition: number }, messages: KafkaMessage[], next: bigint): Promise<PartlyConsumed | undefined> => {
    try {
      const producer = await preparedProducer(batch.topic, batch.partition);
      const key = keyOf(batch.topic, batch.partition);
      const from = resumeAt.get(key) ?? 0n;
      const fresh = BigInt(messages[0]!.offset) < from ? messages.filter((m) => BigInt(m.offset) >= from) : messages;
      if (fresh.length === 0) {
        logger.info({ topic: batch.topic, partition: batch.partition, from: messages[0]!.offset, to: messages[messages.length - 1]!.offset, committed: from.toString() }, 'skipping records already committed (by a previous owner, or by this instance before a rebalance re-read an older committed offset)');
        return { outputs: [], consumed: messages.length };
      }
      const result = await options.process(fresh.map((message) => ({ topic: batch.topic, partition: batch.partition, message })));
      const { outputs, consumed } = Array.isArray(result) ? { outputs: result, consumed: fresh.length } : result;
      const skipped = messages.length - fresh.length;
      if (consumed >= fresh.length) {
        await commit(producer, batch.partition, outputs, { topic: batch.topic, offset: next });
        resumeAt.set(key, next);
        return { outputs, consumed: messages.length };
      }
      // Taken in part: commit up to the first record left; nothing taken, nothing to commit.
      if (consumed > 0 || outputs.length > 0) {
        const firstLeft = BigInt(fresh[consumed]!.offset);
        await commit(producer, batch.partition, outputs, { topic: batch.topic, offset: firstLeft });
        resumeAt.set(key, firstLeft);
      }
      return { outputs, consumed: skipped + consumed };
    } catch (err) {
      // State may hold part of this batch and the producer may be fenced or stuck: this
      // incarnation is done; the next one restores state and reads the batch again.
      logger.warn({ err, topic: batch.topic, partition: batch.partition, offset: messages[0]!.offset }, 'batch failed; replacing consumer, producers and state');
      context.fail(err);
      return undefined;
    }
  };

  try {
    await consumer.connect();
    for (const topic of options.topics) await consumer.subscribe({ topic, fromBeginning: true });
    await consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      partitionsConsumedConcurrently: PARTITIONS_CONCURRENTLY,
      eachBatch: (payload) => context.track(async () => {
        const { batch, resolveOffset, heartbeat, isRunning, isStale } = payload;
        const key = keyOf(batch.topic, batch.partition);
        for (let start = 0; start < batch.messages.length; start += maxBatch) {
          if (context.ended() || !isRunning() || isStale()) return;
          const started = Date.now();
          const messages = batch.messages.slice(start, start + maxBatch);
          const complete = start + maxBatch >= batch.messages.length;
          // The whole fetch done: commit past the markers and aborted records that end it too.
          const next = complete ? BigInt(batch.lastOffset()) + 1n : BigInt(messages[messages.length - 1]!.offset) + 1n;
          const done = await lanes.run(key, () => (context.ended() ? Promise.resolve(undefined) : processChunk(batch, messages, next)));
          if (!done) return;
          const { outputs, consumed } = done;
          if (consumed < messages.length) {
            // Held back: the records left are fetched again from the first of them. A partition
            // of which nothing was taken waits a moment, so that it does not spin.
            if (consumed > 0) {
              resolveOffset(messages[consumed - 1]!.offset);
              context.progress.advanced({ topic: batch.topic, partition: batch.partition }, BigInt(messages[consumed]!.offset), BigInt(batch.highWatermark));
            } else {
              const resume = payload.pause();
              const timer = setTimeout(() => {
                try {
                  resume();
                } catch {
                  // The incarnation ended meanwhile; the next one fetches the partition afresh.
                }
              }, options.holdBackMs ?? 100);
              timer.unref();
            }
            await heartbeat();
            return;
          }
          // Moves the consumer's position on; the committed offset already moved with the transaction.
          resolveOffset(messages[messages.length - 1]!.offset);
          context.progress.advanced({ topic: batch.topic, partition: batch.partition }, next, BigInt(batch.highWatermark));
          options.onCommitted?.({
            topic: batch.topic,
            partition: batch.partition,
            records: messages.length,
            outputs: outputs.length,
            lag: Math.max(0, Number(BigInt(batch.highWatermark) - next)),
            durationMs: Date.now() - started,
          });
          // Outside the try: a rebalance reported here is kafkajs' to handle (it rejoins); nothing is in doubt.
          await heartbeat();
        }
      }),
    });
  } catch (err) {
    await stopIncarnation(false);
    throw err;
  }
  return { stop: stopIncarnation };
}
