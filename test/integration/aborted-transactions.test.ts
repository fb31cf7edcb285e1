import { describe, expect, it } from 'vitest';
import { createKafka } from '../../services/common/kafka.ts';
import { createLogger } from '../../services/common/logger.ts';
import { createTopics } from '../support/kafka.ts';
import { stackEndpoints } from '../support/stack.ts';
import { readTopic } from '../support/topicReader.ts';
import { uniqueName } from '../support/unique.ts';

/**
 * Transactions that overlap on one partition and are aborted in another order than they
 * began: what a crashed service leaves behind (an open transaction per partition it was
 * writing), aborted later by its successors in whatever order they start. The broker lists
 * aborted transactions in the order they were aborted; a read-committed consumer must still
 * drop every record of each of them and keep every committed one.
 */
describe('read committed, with overlapping aborted transactions', () => {
  it('delivers exactly the committed records, whatever order the open transactions were aborted in', async () => {
    const kafka = createKafka({ brokers: stackEndpoints().kafkaBrokers, clientId: 'aborted-overlap', logger: createLogger({ level: 'error' }) });
    const topic = uniqueName('aborted-overlap');
    await createTopics(kafka, [{ topic, numPartitions: 1 }]);
    const producer = (id: string) => kafka.producer({ transactionalId: `${topic}-${id}`, idempotent: true, maxInFlightRequests: 1 });
    const [first, second, third, committer] = [producer('first'), producer('second'), producer('third'), producer('committer')];
    for (const p of [first, second, third, committer]) await p.connect();
    const send = async (tx: Awaited<ReturnType<typeof first.transaction>>, values: string[]) => tx.send({ topic, acks: -1, messages: values.map((value) => ({ key: 'k', value, partition: 0 })) });
    const committed = async (values: string[]) => {
      const tx = await committer.transaction();
      await send(tx, values);
      await tx.commit();
    };
    try {
      await committed(['c1']);
      // Three transactions open at once, interleaved with committed records.
      const a = await first.transaction();
      await send(a, ['a1', 'a2']);
      await committed(['c2']);
      const b = await second.transaction();
      await send(b, ['b1']);
      await send(a, ['a3']);
      const c = await third.transaction();
      await send(c, ['c-aborted-1']);
      await committed(['c3']);
      await send(b, ['b2']);
      // Aborted last-begun first: the broker's list is then not in the order they began.
      await c.abort();
      await b.abort();
      await committed(['c4']);
      await a.abort();
      await committed(['c5']);
    } finally {
      for (const p of [first, second, third, committer]) await p.disconnect();
    }
    const read = await readTopic(kafka, topic);
    expect(read.map(({ message }) => message.value!.toString())).toEqual(['c1', 'c2', 'c3', 'c4', 'c5']);
    // And when the fetch begins inside open transactions (at a2, b1, b2).
    const everything = await readTopic(kafka, topic, { readUncommitted: true });
    const offsetOf = (value: string) => BigInt(everything.find(({ message }) => message.value?.toString() === value)!.message.offset);
    for (const from of ['a2', 'b1', 'b2'].map(offsetOf)) {
      const tail = await readTopic(kafka, topic, { from: new Map([[0, from.toString()]]) });
      const expected = read.filter(({ message }) => BigInt(message.offset) >= from).map(({ message }) => message.value!.toString());
      expect(tail.map(({ message }) => message.value!.toString()), `from offset ${from}`).toEqual(expected);
    }
  }, 120_000);
});
