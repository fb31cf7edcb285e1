import type { Producer } from 'kafkajs';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { restorePartitions, type RestoreTarget } from '../../services/common/changelogRestore.ts';
import { fencePreviousOwner } from '../../services/common/fencing.ts';
import { createTopics, fileAdmin, testKafka } from '../support/kafka.ts';
import { uniqueName } from '../support/unique.ts';

/**
 * A restore on the real broker: it reads each partition from the start of its log to its own
 * marker, committed records only (aborted transactions, open ones and markers are not state),
 * tombstones removing keys, a log whose first records were deleted from its new start, and
 * several partitions in one read whatever their sizes (here across several fetches).
 */
const kafka = testKafka('changelog-restore');
const admin = fileAdmin(kafka);

/** A target that keeps what it is given, as the stores do. */
function mapTarget(): RestoreTarget & { values: Map<string, string> } {
  const values = new Map<string, string>();
  return {
    values,
    load(bytes, keyAt, keyLength, valueAt, valueLength) {
      const key = bytes.toString('utf8', keyAt, keyAt + keyLength);
      if (valueLength < 0) values.delete(key);
      else values.set(key, bytes.toString('utf8', valueAt, valueAt + valueLength));
    },
  };
}

async function inTransaction(producer: Producer, topic: string, partition: number, records: [string, string | null][], end: 'commit' | 'abort'): Promise<void> {
  const transaction = await producer.transaction();
  await transaction.send({ topic, messages: records.map(([key, value]) => ({ key, value, partition })) });
  await (end === 'commit' ? transaction.commit() : transaction.abort());
}

describe('changelog restore', () => {
  it('reads committed records to its marker, from the log start, for several partitions at once', async () => {
    const topic = uniqueName('restore');
    await createTopics(kafka, [{ topic, numPartitions: 3 }]);
    const writer = kafka.producer({ transactionalId: uniqueName('restore-writer'), idempotent: true, maxInFlightRequests: 1 });
    await writer.connect();
    // Partition 0: committed, aborted, committed with a tombstone and a rewrite.
    await inTransaction(writer, topic, 0, [['a', 'a1'], ['b', 'b1']], 'commit');
    await inTransaction(writer, topic, 0, [['c', 'never'], ['a', 'never']], 'abort');
    await inTransaction(writer, topic, 0, [['a', null], ['b', 'b2'], ['d', 'd1']], 'commit');
    // Partition 1: many records (several fetches' worth), the first ones deleted from the log.
    const big = 'x'.repeat(2_000);
    for (let batch = 0; batch < 30; batch++) await inTransaction(writer, topic, 1, Array.from({ length: 200 }, (_, i) => [`k${batch * 200 + i}`, `${batch}:${big}`] as [string, string]), 'commit');
    // Each transaction takes 201 offsets (its marker); the log now starts inside batch 4, at its 150th record.
    const deletedBelow = 4 * 201 + 150;
    await admin().fetchTopicMetadata({ topics: [topic] }); // kafkajs deletes records only of topics whose metadata it holds
    await admin().deleteTopicRecords({ topic, partitions: [{ partition: 1, offset: String(deletedBelow) }] });
    // Partition 2: nothing at all.
    await writer.disconnect();

    const producers = new Map<number, Producer>();
    for (const partition of [0, 1, 2]) {
      const producer = kafka.producer({ transactionalId: uniqueName(`restore-owner-${partition}`), idempotent: true, maxInFlightRequests: 1 });
      await producer.connect();
      await fencePreviousOwner(producer);
      producers.set(partition, producer);
    }
    // An open transaction on partition 0 (written after the owners took over): not read, and not waited for past the marker.
    const straggler = kafka.producer({ transactionalId: uniqueName('restore-straggler'), idempotent: true, maxInFlightRequests: 1 });
    await straggler.connect();
    try {
      const targets = new Map([0, 1, 2].map((p) => [p, mapTarget()] as const));
      const logged: Record<string, unknown>[] = [];
      const logger = pino({ level: 'info' }, { write: (line: string) => void logged.push(JSON.parse(line) as Record<string, unknown>) });
      await restorePartitions({ kafka, changelogTopic: topic, producers, logger, logEvent: 'test.restored', targets, restored: (p) => targets.get(p)!.values.size, timeoutMs: 60_000 });

      expect(Object.fromEntries(targets.get(0)!.values)).toEqual({ b: 'b2', d: 'd1' });
      const one = targets.get(1)!.values;
      // Keys k0-k949 are gone (the batch read back from the new start holds k800-k999: those before it are not state); the rest is there, each key once.
      expect(one.size).toBe(6_000 - 950);
      expect(one.has('k949')).toBe(false);
      expect(one.get('k950')?.startsWith('4:')).toBe(true);
      expect(one.get('k5999')?.startsWith('29:')).toBe(true);
      expect(targets.get(2)!.values.size).toBe(0);
      const lines = logged.filter((l) => l.msg === 'test.restored');
      expect(lines.map((l) => l.partition).sort()).toEqual([0, 1, 2]);
      expect(lines.find((l) => l.partition === 1)).toMatchObject({ keys: 5_050, records: 5_050 });
      expect(lines.find((l) => l.partition === 0)).toMatchObject({ keys: 2, records: 5 });

      // Records committed after the marker belong to the next owner's restore, not this one.
      const open = await straggler.transaction();
      await open.send({ topic, messages: [{ key: 'late', value: 'open', partition: 0 }] });
      const again = new Map([[0, mapTarget()]] as const);
      await restorePartitions({ kafka, changelogTopic: topic, producers: new Map([[0, producers.get(0)!]]), logger, logEvent: 'test.restored', targets: again, restored: () => again.get(0)!.values.size, timeoutMs: 3_000 }).then(
        () => expect.unreachable('a marker behind an open transaction cannot be read'),
        (err: Error) => expect(err.message).toMatch(/took over/),
      );
      await open.abort();
    } finally {
      await straggler.disconnect();
      for (const producer of producers.values()) await producer.disconnect();
    }
  }, 120_000);

  it('gives up at its deadline when a reader never answers (one on another thread that hangs)', async () => {
    const topic = uniqueName('restore-hung');
    await createTopics(kafka, [{ topic, numPartitions: 1 }]);
    const owner = kafka.producer({ transactionalId: uniqueName('restore-hung-owner'), idempotent: true, maxInFlightRequests: 1 });
    await owner.connect();
    try {
      await fencePreviousOwner(owner);
      await inTransaction(owner, topic, 0, [['a', 'a1']], 'commit');
      let asked = 0;
      const logger = pino({ level: 'silent' });
      const started = Date.now();
      const restoring = restorePartitions({
        kafka,
        changelogTopic: topic,
        producers: new Map([[0, owner]]),
        logger,
        logEvent: 'test.restored',
        targets: new Map([[0, mapTarget()]]),
        readerOf: () => ({ read: () => ((asked++), new Promise<never>(() => {})), finish: async () => {} }),
        restored: () => 0,
        timeoutMs: 3_000,
      });
      await expect(restoring).rejects.toThrow(/partitions 0 took over 3000 ms/);
      expect(asked, 'the reader was given the record set').toBe(1);
      expect(Date.now() - started, 'gave up at its deadline, not much later').toBeLessThan(10_000);
    } finally {
      await owner.disconnect();
    }
  }, 60_000);
});
