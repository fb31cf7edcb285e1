import type { Admin, Producer, Transaction } from 'kafkajs';

/**
 * Taking over a transactional id: fencing its previous owner, and ending whatever that owner
 * left open on the partitions it writes, before anything is read.
 *
 * Fencing: kafkajs' connect() takes a producer id without the transactional id, which fences
 * nobody; only the first transaction() sends the transactional InitProducerId that does (and
 * makes the broker finish the previous owner's last transaction first). So one is begun here.
 *
 * Ending what was left open: the broker's transaction coordinator (Kafka 4.4), loading its log
 * as the broker starts after a crash, completes each transaction it finds half-way through
 * commit or abort (PrepareCommit, PrepareAbort) by writing markers to its partitions; while the
 * broker is still starting it cannot find their leader, logs "Couldn't find leader endpoint ...
 * likely deleted already and hence can be skipped", skips the markers and records the
 * transaction as complete. Its records and pending consumer offsets then stay open on their
 * partitions (holding back read_committed readers) until the next marker of the same producer
 * id, which commits them with whatever that producer wrote since. A successor that read the
 * committed offset without them processed those records again and its first commit made both
 * copies visible: the chaos drill found ingest writing raw records twice and the aggregator
 * counting them twice (4 and 20 duplicates in drills of two and four broker kills).
 *
 * So the successor's first transaction adds every partition the id may write and the group's
 * offsets partition, writes nothing and aborts: the ABORT markers end the open records and
 * offsets together, the way Kafka's own tool ends a hanging transaction (KIP-664). The
 * committed offset read afterwards is the one before them, and their inputs are processed
 * again, once. A transaction that was not left open is unaffected: its markers were written.
 */
export interface TransactionScope {
  /** Every partition of every topic the id's transactions may write. */
  topics: { topic: string; partitions: { partition: number }[] }[];
  /** The consumer group whose offsets the id's transactions commit. */
  groupId: string;
}

/** A transaction begun by the patched kafkajs (patches/kafkajs+2.2.4.patch), which adds partitions without writing to them. */
interface ScopedTransaction extends Transaction {
  addPartitions?(scope: { topics: TransactionScope['topics']; consumerGroupId?: string }): Promise<void>;
}

/** Fences the id's previous owner and, given the scope, aborts whatever it left open there (see above). */
export async function fencePreviousOwner(producer: Producer, scope?: TransactionScope): Promise<void> {
  const transaction: ScopedTransaction = await producer.transaction();
  if (scope) {
    if (!transaction.addPartitions) {
      await transaction.abort();
      throw new Error('kafkajs is not patched (transaction.addPartitions is missing): run `npm ci`, whose postinstall applies patches/kafkajs+2.2.4.patch');
    }
    await transaction.addPartitions({ topics: scope.topics, consumerGroupId: scope.groupId });
  }
  // With nothing added, kafkajs sends no EndTxn; with the scope, the ABORT markers go out.
  await transaction.abort();
}

/** The scope of a service's transactions: every partition of the topics it writes, and its group. */
export async function transactionScope(admin: Admin, topics: readonly string[], groupId: string): Promise<TransactionScope> {
  // Asked for no topics, kafkajs would describe every topic of the cluster.
  if (topics.length === 0) return { topics: [], groupId };
  const { topics: described } = await admin.fetchTopicMetadata({ topics: [...new Set(topics)] });
  return {
    topics: described.map((t) => ({ topic: t.name, partitions: t.partitions.map((p) => ({ partition: p.partitionId })) })),
    groupId,
  };
}
