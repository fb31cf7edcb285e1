import type { Producer } from 'kafkajs';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { internedIds } from '../../services/aggregate/internedIds.ts';
import { restoreThreads } from '../../services/aggregate/restoreThreads.ts';
import { encodeJsonUserState, type UserState } from '../../services/aggregate/userState.ts';
import { encodeUserState } from '../../services/aggregate/userStateCodec.ts';
import { UserTable } from '../../services/aggregate/userTable.ts';
import { ChangeloggedStore } from '../../services/common/changeloggedStore.ts';
import { fencePreviousOwner } from '../../services/common/fencing.ts';
import { createTopics, testKafka } from '../support/kafka.ts';
import { randomInt, seededRandom } from '../support/random.ts';
import { uniqueName } from '../support/unique.ts';
import { userStateStrings } from '../support/userStateStrings.ts';

/**
 * The aggregator's state restored on worker threads (restoreThreads.ts) on the real broker:
 * what each partition holds afterwards is exactly what its changelog says (last value per key,
 * tombstones applied, aborted transactions skipped), the same as a restore on one thread,
 * although each worker numbers the strings of user state in its own order; and a record a
 * worker cannot read fails the restore, saying which partition, rather than hanging it.
 */
const kafka = testKafka('aggregate-restore-threads');
const t0 = Date.UTC(2026, 10, 28);

/** Users whose strings each partition meets in another order (experiment ids, variants, metrics), so worker and aggregator numberings differ. */
function userOf(random: () => number, partition: number): UserState {
  const experiments = partition === 0 ? ['exp-b', 'exp-a'] : partition === 1 ? ['exp-c', 'exp-a', 'exp-b'] : ['exp-a'];
  const state: UserState = { assignments: {}, totals: {}, held: [], newest: t0 + randomInt(random, 1_000_000) };
  for (const e of experiments) {
    if (random() < 0.3) continue;
    state.assignments[`${e}-p${partition}`] = { variant: random() < 0.5 ? `control-${partition}` : 'treatment', exposedAt: t0 + randomInt(random, 100_000), conflicted: random() < 0.2 };
    state.totals[`${e}\u0000revenue-${partition}`] = (random() - 0.3) * 1e6;
  }
  let time = t0;
  for (let h = randomInt(random, 3); h > 0; h--) state.held.push([`metric-${randomInt(random, 3) + partition}`, random(), (time += randomInt(random, 5_000))]);
  return state;
}

async function inTransaction(producer: Producer, topic: string, partition: number, records: [string, Buffer | null][], end: 'commit' | 'abort'): Promise<void> {
  const transaction = await producer.transaction();
  await transaction.send({ topic, messages: records.map(([key, value]) => ({ key, value, partition })) });
  await (end === 'commit' ? transaction.commit() : transaction.abort());
}

async function owners(partitions: number[]): Promise<Map<number, Producer>> {
  const producers = new Map<number, Producer>();
  for (const partition of partitions) {
    const producer = kafka.producer({ transactionalId: uniqueName(`threads-owner-${partition}`), idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    await fencePreviousOwner(producer);
    producers.set(partition, producer);
  }
  return producers;
}

function storeOf(topic: string, threads: number, logged: Record<string, unknown>[]) {
  const logger = pino({ level: 'debug' }, { write: (line: string) => void logged.push(JSON.parse(line) as Record<string, unknown>) });
  return new ChangeloggedStore<UserState, UserTable>({
    kafka,
    changelogTopic: topic,
    logger,
    logEvent: 'test.restored',
    table: () => new UserTable(),
    ...(threads > 0 ? { offThreadRestore: () => restoreThreads({ threads, minRecords: 0, logger }) } : {}),
  });
}

/** Restores `partitions` into `store`, each fenced by a fresh transactional owner. */
async function restoreWith(store: ChangeloggedStore<UserState, UserTable>, partitions: number[]): Promise<void> {
  const producers = await owners(partitions);
  try {
    await store.restoreAll(producers);
  } finally {
    for (const producer of producers.values()) await producer.disconnect();
  }
}

describe('aggregator state restored on worker threads', () => {
  it('holds exactly what the changelog says, as a restore on one thread does', async () => {
    const topic = uniqueName('restore-threads');
    await createTopics(kafka, [{ topic, numPartitions: 3 }]);
    const random = seededRandom(77);
    const expected = [0, 1, 2].map(() => new Map<string, UserState>());
    const writer = kafka.producer({ transactionalId: uniqueName('threads-writer'), idempotent: true, maxInFlightRequests: 1 });
    await writer.connect();
    for (let round = 0; round < 12; round++) {
      for (const partition of [0, 1, 2]) {
        const records: [string, Buffer | null][] = [];
        for (let i = 0; i < 400; i++) {
          const key = `user-${partition}-${randomInt(random, 2_000)}`;
          if (random() < 0.05) {
            records.push([key, null]);
            expected[partition]!.delete(key);
          } else {
            const state = userOf(random, partition);
            // Partitions 0 and 1 (on different workers) in the JSON format, which this thread
            // never encodes: their strings are new to the aggregator when the workers meet them,
            // each worker numbers them from the same id, and one of them has to be renumbered.
            records.push([key, partition === 2 ? encodeUserState(state) : encodeJsonUserState(state)]);
            expected[partition]!.set(key, state);
          }
        }
        await inTransaction(writer, topic, partition, records, 'commit');
        // Aborted: bytes no decoder reads, which a restore must never see.
        if (round % 4 === 1) await inTransaction(writer, topic, partition, [[`user-${partition}-0`, Buffer.from([7, 7, 7])], ['never', Buffer.from('x')]], 'abort');
      }
    }
    await writer.disconnect();

    const before = internedIds.all().length;
    const restored: Map<string, UserState>[][] = [];
    const logs: Record<string, unknown>[][] = [];
    const backs: Record<string, unknown>[][] = [];
    // Two threads for three partitions: one of them restores two.
    for (const threads of [2, 0]) {
      const logged: Record<string, unknown>[] = [];
      const store = storeOf(topic, threads, logged);
      await restoreWith(store, [0, 1, 2]);
      restored.push([0, 1, 2].map((p) => new Map(store.partition(p).table.entries())));
      logs.push(logged.filter((line) => line.msg === 'test.restored'));
      backs.push(logged.filter((line) => line.msg === 'aggregate.restore_table_back'));
    }
    const [onThreads, here] = restored as [Map<string, UserState>[], Map<string, UserState>[]];
    for (const partition of [0, 1, 2]) {
      expect(onThreads[partition]!.size, `partition ${partition}`).toBe(expected[partition]!.size);
      expect(onThreads[partition], `partition ${partition} restored on a worker thread`).toEqual(expected[partition]);
      expect(here[partition], `partition ${partition} restored here`).toEqual(expected[partition]);
    }
    expect(logs[0]!.map((line) => line.elsewhere)).toEqual([true, true, true]);
    // At least one table came back numbered otherwise and was renumbered (the case this test is for).
    expect(backs[0]!.some((line) => line.renumbered === true), JSON.stringify(backs[0])).toBe(true);
    expect(logs[1]!.map((line) => line.elsewhere)).toEqual([undefined, undefined, undefined]);
    // The strings of user state are the aggregator's: each one once, whichever thread met it first.
    const strings = internedIds.all();
    expect(new Set(strings).size).toBe(strings.length);
    expect(strings.slice(before)).toEqual(expect.arrayContaining(['exp-c-p1', 'control-0', 'control-1']));
  }, 120_000);

  it('needs no renumbering when the strings were numbered here first (the aggregator numbers its definitions\' strings before a restore)', async () => {
    const topic = uniqueName('restore-threads-seeded');
    await createTopics(kafka, [{ topic, numPartitions: 3 }]);
    const random = seededRandom(91);
    const expected = [0, 1, 2].map(() => new Map<string, UserState>());
    const writer = kafka.producer({ transactionalId: uniqueName('threads-seeded-writer'), idempotent: true, maxInFlightRequests: 1 });
    await writer.connect();
    for (const partition of [0, 1, 2]) {
      const records: [string, Buffer | null][] = [];
      for (let i = 0; i < 800; i++) {
        const state = userOf(random, partition + 3);
        // JSON (format 1): encoding in format 2 would number the strings here as it wrote them.
        records.push([`user-${partition}-${i}`, encodeJsonUserState(state)]);
        expected[partition]!.set(`user-${partition}-${i}`, state);
      }
      await inTransaction(writer, topic, partition, records, 'commit');
    }
    await writer.disconnect();
    // Every string those users hold, numbered here before the restore (in an order of its own).
    const strings = userStateStrings(expected.flatMap((users) => [...users.values()]));
    for (const value of [...strings].sort()) internedIds.idOf(value);
    const logged: Record<string, unknown>[] = [];
    const store = storeOf(topic, 2, logged);
    await restoreWith(store, [0, 1, 2]);
    for (const partition of [0, 1, 2]) expect(new Map(store.partition(partition).table.entries()), `partition ${partition}`).toEqual(expected[partition]);
    const backs = logged.filter((line) => line.msg === 'aggregate.restore_table_back');
    expect(backs.map((line) => [line.partition, line.renumbered]).sort()).toEqual([
      [0, false],
      [1, false],
      [2, false],
    ]);
  }, 120_000);

  it('fails the restore, naming the partition, when a worker cannot read a record', async () => {
    const topic = uniqueName('restore-threads-bad');
    await createTopics(kafka, [{ topic, numPartitions: 2 }]);
    const writer = kafka.producer({ transactionalId: uniqueName('threads-bad-writer'), idempotent: true, maxInFlightRequests: 1 });
    await writer.connect();
    const random = seededRandom(3);
    await inTransaction(writer, topic, 0, [['fine', encodeUserState(userOf(random, 0))]], 'commit');
    await inTransaction(writer, topic, 1, [['fine', encodeUserState(userOf(random, 1))], ['broken', Buffer.from([7, 1, 2])]], 'commit');
    await writer.disconnect();
    const logged: Record<string, unknown>[] = [];
    const store = storeOf(topic, 2, logged);
    await expect(restoreWith(store, [0, 1])).rejects.toThrow(/partition 1 on a worker thread: unknown user state format 7/);
    expect(store.owns(1)).toBe(false);
  }, 60_000);
});
