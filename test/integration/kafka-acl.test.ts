import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { AclOperationTypes, AclPermissionTypes, AclResourceTypes, Kafka, logLevel, ResourcePatternTypes } from 'kafkajs';
import { afterAll, describe, expect, it } from 'vitest';
import { startLocalBroker, type LocalBroker } from '../../infra/kafka/localBroker.ts';
import { createTopicsAndWait } from '../../services/common/topicAdmin.ts';
import { trackPid } from '../support/processRegistry.ts';
import { readTopic } from '../support/topicReader.ts';
import { waitFor } from '../support/waitFor.ts';

const ROOT = resolve(import.meta.dirname, '../..');

/**
 * The README's advice for real clusters, tried on a real broker: SASL/SCRAM authentication
 * and ACLs that let only the guard (and the control plane) write exp.control, and only the
 * control service write exp.definitions.
 */
describe('exp.control and exp.definitions locked down with SASL/SCRAM and ACLs', () => {
  let broker: LocalBroker | undefined;
  afterAll(async () => broker?.stop());

  it('lets the guard produce to exp.control and only the control service to exp.definitions, and refuses a principal without an ACL and a wrong password', async () => {
    const users = { admin: 'admin-secret', guard: 'guard-secret', mallory: 'mallory-secret', control: 'control-secret' };
    broker = await startLocalBroker({
      dataDir: join(mkdtempSync(join(tmpdir(), 'acl-broker-')), 'kafka'),
      cacheDir: resolve(ROOT, '.cache'),
      security: { superUser: { name: 'admin', password: users.admin }, users: [{ name: 'guard', password: users.guard }, { name: 'mallory', password: users.mallory }, { name: 'control', password: users.control }] },
    });
    trackPid(broker.pid, 'SASL/ACL broker');
    const as = (username: string, password: string) => new Kafka({ brokers: broker!.brokers, clientId: username, logLevel: logLevel.NOTHING, sasl: { mechanism: 'scram-sha-256', username, password }, retry: { retries: 2, initialRetryTime: 100 } });
    const admin = as('admin', users.admin);
    const adminClient = admin.admin();
    await adminClient.connect();
    await createTopicsAndWait(adminClient, [{ topic: 'exp.control', numPartitions: 1 }, { topic: 'exp.definitions', numPartitions: 1, configEntries: [{ name: 'cleanup.policy', value: 'compact' }] }]);
    const allowWrite = (principal: string, topic: string) => [AclOperationTypes.WRITE, AclOperationTypes.DESCRIBE].map((operation) => ({
      resourceType: AclResourceTypes.TOPIC, resourceName: topic, resourcePatternType: ResourcePatternTypes.LITERAL,
      principal, host: '*', operation, permissionType: AclPermissionTypes.ALLOW,
    }));
    await adminClient.createAcls({ acl: [...allowWrite('User:guard', 'exp.control'), ...allowWrite('User:control', 'exp.definitions')] });
    // ACLs take effect through the metadata log: wait until the broker's authorizer lists all four
    // (DescribeAcls is answered from the same ACL cache that authorizes requests).
    let bindings = 0;
    await waitFor(
      async () => {
        const listed = await Promise.all(['exp.control', 'exp.definitions'].map((topic) => adminClient.describeAcls({
          resourceType: AclResourceTypes.TOPIC, resourceName: topic, resourcePatternType: ResourcePatternTypes.LITERAL,
          host: '*', operation: AclOperationTypes.ANY, permissionType: AclPermissionTypes.ALLOW,
        })));
        bindings = listed.flatMap(({ resources }) => resources.flatMap((r) => r.acls)).length;
        return bindings === 4;
      },
      { timeoutMs: 30_000, message: () => `the broker lists ${bindings} of the 4 ACLs on exp.control and exp.definitions` },
    );
    await adminClient.disconnect();

    const send = async (kafka: Kafka, value: string, topic = 'exp.control') => {
      const producer = kafka.producer({ allowAutoTopicCreation: false });
      await producer.connect();
      try {
        await producer.send({ topic, acks: -1, messages: [{ key: 'exp', value }] });
      } finally {
        await producer.disconnect();
      }
    };
    await send(as('guard', users.guard), 'from the guard');

    await expect(send(as('mallory', users.mallory), 'from mallory')).rejects.toThrow(/not authorized|authorization/i);
    await expect(send(as('guard', 'guessed-password'), 'with a guessed password')).rejects.toThrow(/SASL|authentication/i);

    const stored = await readTopic(admin, 'exp.control');
    expect(stored.map(({ message }) => message.value!.toString())).toEqual(['from the guard']);

    // exp.definitions: the control service may write it; the guard (allowed on exp.control) and anyone else may not.
    await send(as('control', users.control), 'from the control service', 'exp.definitions');
    await expect(send(as('guard', users.guard), 'from the guard', 'exp.definitions')).rejects.toThrow(/not authorized|authorization/i);
    await expect(send(as('mallory', users.mallory), 'from mallory', 'exp.definitions')).rejects.toThrow(/not authorized|authorization/i);
    const definitions = await readTopic(admin, 'exp.definitions');
    expect(definitions.map(({ message }) => message.value!.toString())).toEqual(['from the control service']);
  }, 120_000);
});
