import type { Consumer, Kafka } from 'kafkajs';
import { anomalies } from '../common/contracts/anomalies.ts';
import { auditRecords } from '../common/contracts/audit.ts';
import { UnreadableRecords } from '../common/contracts/unreadablePolicy.ts';
import type { HealthReport } from '../common/health.ts';
import { ensureTopics } from '../common/topicAdmin.ts';
import type { TopicNames } from '../common/topics.ts';
import { fromAnomaly, fromAudit, type Notification } from './notification.ts';
import { MAX_PENDING_DELIVERIES, WebhookDelivery, type DeliveryOptions } from './webhookDelivery.ts';
import { wants } from './webhookConfig.ts';

/**
 * The notifier: its own process and consumer group on exp.audit (accepted halts, resumes and
 * lifecycle moves) and exp.anomalies, calling the configured webhooks. It only reads what the
 * control service and the guard have already committed, so nothing it does (a slow or dead
 * receiver, retries, its own crash) can delay a halt. Offsets are committed up to the oldest
 * notification not yet settled (delivered or given up), so a restart delivers again what was
 * still being retried (receivers deduplicate on the x-expstream-delivery id); a receiver that
 * stays down holds that commit back, never the reading.
 */
export interface NotifyOptions extends DeliveryOptions {
  kafka: Kafka;
  topics: TopicNames;
  groupId: string;
  startFrom: 'latest' | 'earliest';
  /** How often offsets are committed. */
  commitIntervalMs?: number;
}

export interface RunningNotifier {
  health(now?: number): HealthReport;
  stop(): Promise<void>;
}

export async function startNotifier(options: NotifyOptions): Promise<RunningNotifier> {
  const log = options.logger.child({ module: 'notify' });
  const { topics } = options;
  await ensureTopics(options.kafka, topics, ['audit', 'anomalies']);
  const unreadable = new UnreadableRecords(options.metrics, log);
  const delivery = new WebhookDelivery({ ...options, logger: log });
  // Per topic-partition, the offsets read and whether each has settled, oldest first.
  const open = new Map<string, { topic: string; partition: number; offsets: { offset: bigint; settled: boolean }[]; next: bigint }>();
  let crashed: string | undefined;

  const consumer: Consumer = options.kafka.consumer({ groupId: options.groupId, readUncommitted: false, allowAutoTopicCreation: false });
  consumer.on(consumer.events.CRASH, (event) => {
    crashed = String(event.payload.error?.message ?? event.payload.error);
    log.error({ err: event.payload.error, restart: event.payload.restart }, 'notify.consumer_crashed');
  });
  consumer.on(consumer.events.GROUP_JOIN, () => (crashed = undefined));
  await consumer.connect();
  await consumer.subscribe({ topics: [topics.audit, topics.anomalies], fromBeginning: options.startFrom === 'earliest' });

  const notificationOf = (topic: string, partition: number, offset: string, value: Buffer | null): Notification | undefined => {
    if (topic === topics.audit) {
      const decoded = auditRecords.decode(value);
      if (!decoded.ok) return void unreadable.handle('audit', { topic, partition, offset }, decoded);
      return fromAudit(decoded.value, offset);
    }
    const decoded = anomalies.decode(value);
    if (!decoded.ok) return void unreadable.handle('anomalies', { topic, partition, offset }, decoded);
    return fromAnomaly(decoded.value, partition, offset);
  };

  await consumer.run({
    autoCommit: false,
    eachMessage: async ({ topic, partition, message }) => {
      const key = `${topic}\0${partition}`;
      const entry = open.get(key) ?? { topic, partition, offsets: [], next: 0n };
      open.set(key, entry);
      const offset = BigInt(message.offset);
      entry.next = offset + 1n;
      const notification = notificationOf(topic, partition, message.offset, message.value);
      const targets = notification ? options.webhooks.filter((w) => wants(w, notification.kind, notification.experimentId)) : [];
      if (!notification || targets.length === 0) return;
      // Bounded memory: while too many deliveries wait, reading waits (never the control path).
      while (delivery.pendingDeliveries >= MAX_PENDING_DELIVERIES) await new Promise((r) => setTimeout(r, 100));
      const slot = { offset, settled: false };
      entry.offsets.push(slot);
      log.info({ notificationId: notification.id, kind: notification.kind, experimentId: notification.experimentId, webhooks: targets.map((t) => t.id) }, 'notify.notification');
      void delivery.deliver(notification, targets).then(() => void (slot.settled = true));
    },
  });

  const commit = async () => {
    const offsets = [...open.values()].map((e) => {
      while (e.offsets[0]?.settled) e.offsets.shift();
      return { topic: e.topic, partition: e.partition, offset: String(e.offsets[0]?.offset ?? e.next) };
    });
    if (offsets.length > 0) await consumer.commitOffsets(offsets).catch((err: unknown) => log.warn({ err }, 'notify.commit_failed'));
  };
  const timer = setInterval(() => void commit(), options.commitIntervalMs ?? 1_000);
  log.info({ groupId: options.groupId, topics: [topics.audit, topics.anomalies], webhooks: options.webhooks.map((w) => ({ id: w.id, experiments: w.experiments ? [...w.experiments] : 'all', events: [...w.events] })) }, 'notify running');

  return {
    health: () => (crashed ? { healthy: false, problems: [`notify consumer crashed: ${crashed}`] } : { healthy: true, problems: [] }),
    stop: async () => {
      clearInterval(timer);
      await consumer.stop();
      await commit();
      await delivery.stop();
      await consumer.disconnect();
    },
  };
}
