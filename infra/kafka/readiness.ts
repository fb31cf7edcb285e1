import { setTimeout as sleep } from 'node:timers/promises';
import { Kafka, logLevel, type SASLOptions } from 'kafkajs';

const PROBE_TOPIC = '__expstream_probe';

/**
 * Waits until the broker serves what the pipeline needs, not merely until it listens:
 * metadata, the group coordinator (committing a group offset) and the transaction
 * coordinator (a committed transaction with sendOffsets). Right after a fresh start both
 * coordinators answer "not available" / "loading" for a while; callers never see that.
 */
export async function waitUntilBrokerServes(brokers: string[], options: { deadline: number; isAlive: () => boolean; sasl?: SASLOptions }): Promise<void> {
  let lastError = 'no answer yet';
  while (Date.now() < options.deadline) {
    if (!options.isAlive()) throw new Error('the broker process exited during start-up');
    try {
      await probeOnce(brokers, options.sasl);
      return;
    } catch (err) {
      lastError = err instanceof Error ? err.message : String(err);
      await sleep(200);
    }
  }
  throw new Error(`the broker did not become ready in time (last probe error: ${lastError})`);
}

async function probeOnce(brokers: string[], sasl: SASLOptions | undefined): Promise<void> {
  const kafka = new Kafka({ brokers, clientId: 'expstream-readiness', logLevel: logLevel.NOTHING, ...(sasl ? { sasl } : {}), connectionTimeout: 1_000, retry: { retries: 30, initialRetryTime: 50, maxRetryTime: 500 } });
  const admin = kafka.admin();
  const producer = kafka.producer({ transactionalId: 'expstream-readiness', idempotent: true, maxInFlightRequests: 1 });
  try {
    await admin.connect();
    const topics = await admin.listTopics();
    if (!topics.includes(PROBE_TOPIC)) await admin.createTopics({ topics: [{ topic: PROBE_TOPIC, numPartitions: 1 }], waitForLeaders: true });
    // Finding the group's coordinator creates __consumer_offsets on a fresh broker.
    await admin.describeGroups(['expstream-readiness']);
    await producer.connect();
    const tx = await producer.transaction();
    await tx.send({ topic: PROBE_TOPIC, messages: [{ value: 'ready' }] });
    await tx.sendOffsets({ consumerGroupId: 'expstream-readiness', topics: [{ topic: PROBE_TOPIC, partitions: [{ partition: 0, offset: '0' }] }] });
    await tx.commit();
  } finally {
    await producer.disconnect().catch(() => {});
    await admin.disconnect().catch(() => {});
  }
}
