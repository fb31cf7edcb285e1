import type { Consumer, ConsumerConfig, Kafka } from 'kafkajs';
import { CONFIG_DEFAULTS } from './config.ts';
import { ConsumerProgress, type LagListener } from './consumerProgress.ts';
import { seconds, type HealthReport, type HealthSource } from './health.ts';
import { startLagMonitor } from './lagMonitor.ts';
import type { Logger } from './logger.ts';
import { Supervisor } from './supervisor.ts';

/**
 * A consumer-group loop that heals itself and tells the truth about it. Each incarnation gets
 * a fresh kafkajs consumer (kafkajs' own restart switched off; its crash ends the incarnation)
 * and whatever the caller builds around it (transactional producers, state). Beside it a lag
 * monitor keeps the lag of the owned partitions true from the broker's side, and a watchdog
 * replaces an incarnation whose partitions have records waiting but have not moved for
 * `restartAfterMs` (a hung request, a lost session kafkajs did not notice).
 *
 * Health fails when the loop has not been running for `stallMs` (crashed and not yet back,
 * fenced, disconnected), when the broker has not answered for `stallMs`, or when a partition
 * with records waiting has not moved for `stallMs`.
 */
export interface IncarnationContext {
  /** Ends this incarnation: everything is closed and a fresh one started after a backoff. */
  fail(err: unknown): void;
  /** True once this incarnation has failed or is stopping: do no more work. */
  ended(): boolean;
  /**
   * Runs one batch's work so that the end of the incarnation can wait for it: the next
   * incarnation must not start while a batch of this one can still touch shared state.
   */
  track<T>(work: () => Promise<T>): Promise<T>;
  /** Resolves once no tracked work is running. */
  settled(): Promise<void>;
  progress: ConsumerProgress;
  /**
   * Asks the broker for the partitions' ends and committed offsets now rather than at the next
   * periodic round: a new assignment's lags are then known within a round trip (ingest's
   * event-time alignment holds an input back while another's lag is unknown).
   */
  checkLag(): void;
}

export interface SupervisedConsumerOptions {
  name: string;
  kafka: Kafka;
  groupId: string;
  topics: string[];
  logger: Logger;
  /** See config `health.stallMs`. */
  stallMs?: number;
  restartAfterMs?: number;
  lagCheckIntervalMs?: number;
  onLag?: LagListener;
  /** Builds and starts one incarnation; on failure it must release what it created. */
  startIncarnation(context: IncarnationContext): Promise<{ stop(graceful: boolean): Promise<void> }>;
}

export interface SupervisedConsumer extends HealthSource {
  progress: ConsumerProgress;
  stop(): Promise<void>;
}


export async function startSupervisedConsumer(options: SupervisedConsumerOptions): Promise<SupervisedConsumer> {
  const log = options.logger;
  const stallMs = options.stallMs ?? CONFIG_DEFAULTS.health.stallMs;
  const restartAfterMs = options.restartAfterMs ?? 4 * stallMs;
  const progress = new ConsumerProgress(options.onLag);
  let stopping = false;
  const supervisor = new Supervisor({
    name: options.name,
    logger: log,
    // Releasing waits for the batch in hand, whose own requests are bounded; this is only
    // the last resort against a hang nobody foresaw.
    stopTimeoutMs: 300_000,
    start: async (fail) => {
      let ended = false;
      const inFlight = new Set<Promise<unknown>>();
      const context: IncarnationContext = {
        fail: (err) => {
          if (ended) return;
          ended = true;
          fail(err);
        },
        ended: () => ended,
        track: (work) => {
          const running = work();
          inFlight.add(running);
          void running.finally(() => inFlight.delete(running)).catch(() => {});
          return running;
        },
        settled: async () => {
          while (inFlight.size > 0) await Promise.allSettled([...inFlight]);
        },
        progress,
        // The monitor starts before the first incarnation (below), so its first assignment can ask for a round.
        checkLag: () => void monitor.check(),
      };
      const incarnation = await options.startIncarnation(context);
      return {
        stop: async () => {
          ended = true;
          await incarnation.stop(stopping);
        },
      };
    },
    onState: (s) => log.info({ state: s.state, restarts: s.restarts, lastError: s.lastError }, `${options.name}.${s.state}`),
  });
  const monitor = startLagMonitor({
    kafka: options.kafka,
    groupId: options.groupId,
    topics: options.topics,
    progress,
    logger: log,
    // Often enough that a stall is seen within the stall time.
    intervalMs: options.lagCheckIntervalMs ?? Math.min(5_000, Math.max(500, Math.floor(stallMs / 3))),
    afterRound: (now) => {
      // Health keeps the stall clock across incarnations (a crash loop is no progress), but
      // the watchdog gives each incarnation its own full period before judging it.
      const status = supervisor.current;
      if (status.state !== 'running' || now - status.since < restartAfterMs) return;
      const stuck = progress.stalled(restartAfterMs, now);
      if (stuck.length > 0) {
        supervisor.restart(`no progress for ${seconds(stuck[0]!.stalledMs)} on ${stuck.map((s) => `${s.topic}[${s.partition}] (${s.lag} waiting)`).join(', ')}`);
      }
    },
  });
  try {
    await supervisor.start();
  } catch (err) {
    await monitor.stop();
    throw err;
  }

  const health = (now = Date.now()): HealthReport => {
    const problems: string[] = [];
    const status = supervisor.current;
    if (status.state !== 'running' && now - status.since >= stallMs) {
      problems.push(`${options.name} ${status.state} for ${seconds(now - status.since)}${status.lastError ? `: ${status.lastError}` : ''}`);
    }
    const silentSince = monitor.silentSince;
    if (silentSince !== undefined && now - silentSince >= stallMs) problems.push(`the broker has not answered for ${seconds(now - silentSince)}`);
    for (const s of progress.stalled(stallMs, now)) problems.push(`${s.topic}[${s.partition}]: ${s.lag} records waiting, no progress for ${seconds(s.stalledMs)}`);
    return { healthy: problems.length === 0, problems };
  };

  return {
    progress,
    health,
    stop: async () => {
      stopping = true;
      await monitor.stop();
      await supervisor.stop();
    },
  };
}

/**
 * A kafkajs consumer for one incarnation: its own restart off, its crash reported to the
 * supervisor, assignments and marker-only batches reported to the progress tracker, and
 * marker-only batches handed to `commitPastMarkers` when given.
 */
export function incarnationConsumer(kafka: Kafka, config: ConsumerConfig, context: IncarnationContext, options: { commitPastMarkers?: MarkersOnlyCommit } = {}): Consumer {
  const consumer = kafka.consumer({ ...config, retry: { ...config.retry, restartOnFailure: async () => false } });
  consumer.on(consumer.events.CRASH, ({ payload }) => context.fail(payload.error));
  consumer.on(consumer.events.GROUP_JOIN, ({ payload }) => {
    context.progress.assign(Object.entries(payload.memberAssignment).flatMap(([topic, partitions]) => partitions.map((partition) => ({ topic, partition }))));
    context.checkLag();
  });
  // A batch that held only transaction markers or aborted records never reaches eachBatch,
  // but it moves the consumer past them: the lag must see that.
  // A fetch of only markers and aborted records (a takeover's markers, an aborted transaction)
  // never reaches eachBatch either: without its own commit, the group's committed offset would
  // stop short of a partition's end by however many markers end it.
  const { commitPastMarkers } = options;
  consumer.on(consumer.events.END_BATCH_PROCESS, ({ payload }) => {
    if (payload.batchSize !== 0) return;
    const next = BigInt(payload.lastOffset) + 1n;
    context.progress.advanced(payload, next, BigInt(payload.highWatermark));
    if (commitPastMarkers && !context.ended()) void context.track(() => commitPastMarkers(payload.topic, payload.partition, next)).catch((err: unknown) => context.fail(err));
  });
  return consumer;
}

/** Commits a partition's offset past a fetch that held only markers and aborted records (`next`: the offset after them). */
export type MarkersOnlyCommit = (topic: string, partition: number, next: bigint) => Promise<void>;

/** Leaves the group, or gives up after `timeoutMs` (a dead broker cannot be left): never hangs the caller. */
export async function disconnectWithin(consumer: Consumer, timeoutMs: number, logger: Logger): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([consumer.disconnect(), new Promise<void>((_, reject) => (timer = setTimeout(() => reject(new Error(`no clean disconnect within ${timeoutMs} ms`)), timeoutMs)))]);
  } catch (err) {
    logger.warn({ err }, 'consumer did not disconnect cleanly; left behind');
  } finally {
    clearTimeout(timer);
  }
}
