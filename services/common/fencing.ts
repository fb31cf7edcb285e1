import type { Admin, Producer, Transaction } from 'kafkajs';
import { retriedWhileRetriable } from './retriable.ts';

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
 * counting them twice (4 and 20 duplicates in drills of three and four broker kills).
 *
 * Nor are the markers all-or-nothing: the broker may die having written some of them (a drill
 * found a transaction's changelog and one output partition committed, its other output and its
 * offsets left open). So the successor asks the coordinator how that transaction ended
 * (DescribeTransactions, before fencing: fencing replaces the answer), then its first
 * transaction adds every partition the id may write and the group's offsets partition, writes
 * nothing, and ends the same way: COMMIT markers finish a commit on the partitions it missed,
 * ABORT markers an abort (Kafka's own tool ends a hanging transaction so, KIP-664). Once the
 * coordinator has written those markers, the committed offset is read and state restored. A
 * transaction whose markers were all written is unaffected: nothing of it is open.
 *
 * Not covered, both only after a broker crash that skipped markers: a successor that dies
 * between its fence and the end of that first transaction leaves an Ongoing transaction, which
 * the next successor's fence aborts whatever the earlier decision was (a window of one round
 * trip); and an owner whose incarnation outlives the broker's restart (in the drills every
 * broker kill replaced every loop's incarnation) takes no part in this: its next transactions
 * commit the open records on the partitions they share, the rest stay open, holding back their
 * readers, until the next takeover.
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

/** What the patched kafkajs tells of a transactional id's last transaction (DescribeTransactions). */
interface TransactionDescription {
  errorCode: number;
  state: string | null;
}
type DescribingProducer = Producer & { describeTransaction?(): Promise<TransactionDescription | undefined> };
type Describe = () => Promise<TransactionDescription | undefined>;

/** States after which the id's last transaction is (or is being) committed. */
const COMMITTED_STATES = new Set(['PrepareCommit', 'CompleteCommit']);
const TRANSACTIONAL_ID_NOT_FOUND = 105;

/**
 * Fences the id's previous owner and, given the scope, ends whatever its last transaction left
 * open there the way that transaction ended (see above). Returns how it ended them.
 */
export async function fencePreviousOwner(producer: Producer, scope?: TransactionScope): Promise<'commit' | 'abort'> {
  const describe = scope ? describerOf(producer) : undefined;
  const decision = describe ? await lastDecision(describe) : 'abort';
  const transaction: ScopedTransaction = await producer.transaction();
  if (scope) {
    if (!transaction.addPartitions) {
      await transaction.abort();
      throw new Error('kafkajs is not patched (transaction.addPartitions is missing): run `npm ci`, whose postinstall applies patches/kafkajs+2.2.4.patch');
    }
    const addPartitions = transaction.addPartitions.bind(transaction);
    // CONCURRENT_TRANSACTIONS while the id's last transaction's markers are still being written.
    await retriedWhileRetriable(() => addPartitions({ topics: scope.topics, consumerGroupId: scope.groupId }));
  }
  // With nothing added, kafkajs sends no EndTxn; with the scope, the markers go out.
  if (decision === 'commit') await transaction.commit();
  else await transaction.abort();
  // The coordinator answers EndTxn before it writes the markers: what comes next (the committed
  // offset read above all) must see them written.
  if (describe) await untilEnded(describe);
  return decision;
}

/** Until the id's coordinator has written its last transaction's markers (its state is no longer Prepare*). */
async function untilEnded(describe: Describe): Promise<void> {
  await retriedWhileRetriable(async () => {
    const description = await describe();
    if (description?.state?.startsWith('Prepare')) throw Object.assign(new Error(`transaction still ${description.state}`), { retriable: true });
  });
}

/**
 * How the id's last transaction ended, as its coordinator records it: 'commit' after a commit
 * (complete or being completed), else 'abort' (aborted, still open, which the fence aborts, or
 * none: nothing to end). Retried while the coordinator loads or moves, as after a broker restart.
 */
async function lastDecision(describe: Describe): Promise<'commit' | 'abort'> {
  const description = await retriedWhileRetriable(describe);
  // An id never used (TRANSACTIONAL_ID_NOT_FOUND) has nothing to end; other errors are thrown by the patched kafkajs.
  if (!description || description.errorCode === TRANSACTIONAL_ID_NOT_FOUND) return 'abort';
  return description.state !== null && COMMITTED_STATES.has(description.state) ? 'commit' : 'abort';
}

/** The patched kafkajs' DescribeTransactions for the producer's transactional id. */
function describerOf(producer: DescribingProducer): Describe {
  if (!producer.describeTransaction) throw new Error('kafkajs is not patched (producer.describeTransaction is missing): run `npm ci`, whose postinstall applies patches/kafkajs+2.2.4.patch');
  return producer.describeTransaction.bind(producer);
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
