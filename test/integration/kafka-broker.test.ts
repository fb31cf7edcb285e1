import { mkdtempSync, rmSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Kafka, logLevel } from 'kafkajs';
import { afterAll, describe, expect, it } from 'vitest';
import { brokerStatus, startLocalBroker } from '../../infra/kafka/localBroker.ts';
import { isProcessAlive } from '../../services/common/processes.ts';
import { createTopics, testKafka } from '../support/kafka.ts';
import { trackPid } from '../support/processRegistry.ts';
import { readTopic } from '../support/topicReader.ts';
import { uniqueName } from '../support/unique.ts';

const CACHE = resolve(import.meta.dirname, '../../.cache');

describe('the real Kafka broker', () => {
  const kafka = testKafka('kafka-broker-test');

  it('produces and consumes through a consumer group, across partitions, keys and order per key kept', async () => {
    const topic = uniqueName('roundtrip');
    await createTopics(kafka, [{ topic, numPartitions: 3 }]);
    const producer = kafka.producer();
    await producer.connect();
    const messages = Array.from({ length: 300 }, (_, i) => ({ key: `user-${i % 17}`, value: JSON.stringify({ seq: i }) }));
    await producer.send({ topic, messages });
    await producer.disconnect();

    // Read through a consumer group up to the end the topic has now: the 300 sent, and nothing else.
    const received = await readTopic(kafka, topic);
    expect(received).toHaveLength(300);
    expect(new Set(received.map((r) => r.partition)).size).toBe(3);
    const byKey = new Map<string, number[]>();
    for (const { message, partition } of received) {
      const key = message.key!.toString();
      const seq = (JSON.parse(message.value!.toString()) as { seq: number }).seq;
      expect(key).toBe(`user-${seq % 17}`);
      byKey.set(key, [...(byKey.get(key) ?? []), seq]);
      // The same key always lands in the same partition.
      expect(received.filter((r) => r.message.key!.toString() === key).every((r) => r.partition === partition)).toBe(true);
    }
    for (const seqs of byKey.values()) expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
  });

  it('commits a transaction with sendOffsets atomically; read_committed never sees an aborted one', async () => {
    const input = uniqueName('tx-in');
    const output = uniqueName('tx-out');
    const groupId = uniqueName('tx-group');
    await createTopics(kafka, [{ topic: input, numPartitions: 2 }, { topic: output }]);

    const producer = kafka.producer({ transactionalId: uniqueName('txid'), idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    const committed1 = await producer.transaction();
    await committed1.send({ topic: output, messages: [{ key: 'a', value: 'committed-1' }] });
    await committed1.sendOffsets({ consumerGroupId: groupId, topics: [{ topic: input, partitions: [{ partition: 0, offset: '5' }] }] });
    await committed1.commit();

    const aborted = await producer.transaction();
    await aborted.send({ topic: output, messages: [{ key: 'b', value: 'aborted' }] });
    await aborted.sendOffsets({ consumerGroupId: groupId, topics: [{ topic: input, partitions: [{ partition: 0, offset: '99' }, { partition: 1, offset: '99' }] }] });
    await aborted.abort();

    const committed2 = await producer.transaction();
    await committed2.send({ topic: output, messages: [{ key: 'c', value: 'committed-2' }] });
    await committed2.sendOffsets({ consumerGroupId: groupId, topics: [{ topic: input, partitions: [{ partition: 1, offset: '7' }] }] });
    await committed2.commit();
    await producer.disconnect();

    // Both readers read to the partition's end (all three transactions are complete), markers included.
    const committedView = await readTopic(kafka, output);
    expect(committedView.map((r) => r.message.value!.toString())).toEqual(['committed-1', 'committed-2']);
    // A read_uncommitted reader does see the aborted record: the test above is not vacuous.
    const uncommittedView = await readTopic(kafka, output, { readUncommitted: true });
    expect(uncommittedView.map((r) => r.message.value!.toString())).toContain('aborted');

    const admin = kafka.admin();
    await admin.connect();
    const [offsets] = await admin.fetchOffsets({ groupId, topics: [input] });
    await admin.disconnect();
    expect(offsets!.partitions.sort((a, b) => a.partition - b.partition).map((p) => p.offset)).toEqual(['5', '7']);
  });
});

describe('the local broker launcher', () => {
  const dirs: string[] = [];
  afterAll(() => {
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  it('starts, serves, stops cleanly and frees its port; a broker left by a crashed run does not block the next', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'broker-lifecycle-'));
    dirs.push(dataDir);
    const first = await startLocalBroker({ dataDir, cacheDir: CACHE });
    trackPid(first.pid, 'lifecycle broker 1');
    expect(brokerStatus(dataDir)).toMatchObject({ running: true, pid: first.pid, brokers: first.brokers });

    // Simulate a crashed run: the first broker is never stopped; start again on the same directory.
    const second = await startLocalBroker({ dataDir, cacheDir: CACHE });
    trackPid(second.pid, 'lifecycle broker 2');
    expect(isProcessAlive(first.pid)).toBe(false);
    expect(second.pid).not.toBe(first.pid);

    const kafka = new Kafka({ brokers: second.brokers, clientId: 'lifecycle', logLevel: logLevel.NOTHING });
    const admin = kafka.admin();
    await admin.connect();
    expect((await admin.describeCluster()).brokers).toHaveLength(1);
    await admin.disconnect();

    await second.stop();
    expect(isProcessAlive(second.pid)).toBe(false);
    expect(brokerStatus(dataDir)).toEqual({ running: false });
    const [host, port] = second.brokers[0]!.split(':') as [string, string];
    const refused = await new Promise<boolean>((done) => {
      const socket = createConnection({ host, port: Number(port) });
      socket.once('connect', () => (socket.destroy(), done(false)));
      socket.once('error', () => done(true));
    });
    expect(refused).toBe(true);
  }, 180_000);
});
