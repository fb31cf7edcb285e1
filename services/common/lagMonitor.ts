import type { Admin, Kafka } from 'kafkajs';
import { keyOf, type ConsumerProgress } from './consumerProgress.ts';
import type { Logger } from './logger.ts';

/**
 * Every `intervalMs`, asks the broker for the ends of the consumer's partitions (last stable
 * offsets: what a read_committed consumer can read) and the group's committed offsets, and
 * hands them to the progress tracker. It runs beside the loop, not inside it, so that a loop
 * that has crashed, hung or lost the broker still shows its lag growing instead of freezing
 * at its last value; and its last successful round trip tells whether the broker answers.
 */
export interface LagMonitorOptions {
  kafka: Kafka;
  groupId: string;
  topics: string[];
  progress: ConsumerProgress;
  logger: Logger;
  intervalMs?: number;
  /** Called after each round, successful or not (e.g. to act on a stall). */
  afterRound?(now: number): void;
}

export interface LagMonitor {
  /** Since when the broker has not answered (ms since epoch): the round after its last answer; undefined while it answers. */
  readonly silentSince: number | undefined;
  /** Runs one round now (tests and shutdown reports); never throws. */
  check(): Promise<void>;
  stop(): Promise<void>;
}

export function startLagMonitor(options: LagMonitorOptions): LagMonitor {
  const intervalMs = options.intervalMs ?? 5_000;
  let admin: Admin | undefined;
  let silentSince: number | undefined;
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  let inFlight: Promise<void> | undefined;

  const round = async () => {
    try {
      if (!admin) {
        admin = options.kafka.admin({ retry: { retries: 1 } });
        await admin.connect();
      }
      const bounds = new Map<string, { start: bigint; end: bigint }>();
      for (const topic of options.topics) {
        for (const p of await admin.fetchTopicOffsets(topic)) bounds.set(keyOf({ topic, partition: p.partition }), { start: BigInt(p.low), end: BigInt(p.high) });
      }
      const committed = new Map<string, bigint>();
      for (const t of await admin.fetchOffsets({ groupId: options.groupId, topics: options.topics })) {
        for (const p of t.partitions) if (Number(p.offset) >= 0) committed.set(keyOf({ topic: t.topic, partition: p.partition }), BigInt(p.offset));
      }
      options.progress.observed(bounds, committed);
      silentSince = undefined;
    } catch (err) {
      silentSince ??= Date.now();
      options.logger.debug({ err }, 'lag check failed');
      // A client that failed may hold dead connections: start the next round with a new one.
      const failed = admin;
      admin = undefined;
      await failed?.disconnect().catch(() => {});
    }
  };
  const check = () => (inFlight ??= round().finally(() => (inFlight = undefined)));
  const schedule = () => {
    if (stopped) return;
    timer = setTimeout(() => {
      void check().then(() => {
        options.afterRound?.(Date.now());
        schedule();
      });
    }, intervalMs);
    timer.unref();
  };
  schedule();

  return {
    get silentSince() {
      return silentSince;
    },
    check,
    stop: async () => {
      stopped = true;
      clearTimeout(timer);
      await inFlight;
      await admin?.disconnect().catch(() => {});
    },
  };
}
