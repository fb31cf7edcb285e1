import { Kafka, logLevel, type Admin } from 'kafkajs';
import { afterAll, beforeAll } from 'vitest';
import { installAbortedRecordFilter } from '../../services/common/abortedRecords.ts';
import { createTopicsAndWait } from '../../services/common/topicAdmin.ts';
import { stackEndpoints } from './stack.ts';

process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1';
installAbortedRecordFilter();

/** A kafkajs client on the test stack's broker. Its retried, harmless errors (coordinator loading,
 * concurrent transactions) are not logged; real failures surface as rejected promises. */
export function testKafka(clientId = 'test'): Kafka {
  return new Kafka({ brokers: stackEndpoints().kafkaBrokers, clientId, logLevel: logLevel.NOTHING, retry: { initialRetryTime: 100, retries: 10 } });
}

export async function createTopics(kafka: Kafka, topics: { topic: string; numPartitions?: number; configEntries?: { name: string; value: string }[] }[]): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    await createTopicsAndWait(admin, topics.map((t) => ({ numPartitions: 1, ...t })));
  } finally {
    await admin.disconnect();
  }
}

/** An admin client for a test file's tests: connected before all of them, disconnected after. Call at the file's top level. */
export function fileAdmin(kafka: Kafka): () => Admin {
  let admin: Admin | undefined;
  beforeAll(async () => {
    admin = kafka.admin();
    await admin.connect();
  });
  afterAll(async () => {
    await admin?.disconnect();
  });
  return () => {
    if (!admin) throw new Error('fileAdmin: the admin is connected in beforeAll; use it inside a test');
    return admin;
  };
}
