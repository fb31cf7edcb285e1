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
 * and ACLs that let only the guard (and the control plane) write exp.control.
 */
describe('exp.control locked down with SASL/SCRAM and ACLs', () => {
  let broker: LocalBroker | undefined;
  afterAll(async () => broker?.stop());

  it('lets the guard produce to exp.control and refuses a principal without an ACL and a wrong password', async () => {
    const users = { admin: 'admin-secret', guard: 'guard-secret', mallory: 'mallory-secret' };
    broker = await startLocalBroker({
      dataDir: join(mkdtempSync(join(tmpdir(), 'acl-broker-')), 'kafka'),
      cacheDir: resolve(ROOT, '.cache'),
      security: { superUser: { name: 'admin', password: users.admin }, users: [{ name: 'guard', password: users.guard }, { name: 'mallory', password: users.mallory }] },
    });
    trackPid(broker.pid, 'SASL/ACL broker');
    const as = (username: string, password: string) => new Kafka({ brokers: broker!.brokers, clientId: username, logLevel: logLevel.NOTHING, sasl: { mechanism: 'scram-sha-256', username, password }, retry: { retries: 2, initialRetryTime: 100 } });
    const admin = as('admin', users.admin);
    const adminClient = admin.admin();
    await adminClient.connect();
    await createTopicsAndWait(adminClient, [{ topic: 'exp.control', numPartitions: 1 }]);
    await adminClient.createAcls({
      acl: [AclOperationTypes.WRITE, AclOperationTypes.DESCRIBE].map((operation) => ({
        resourceType: AclResourceTypes.TOPIC, resourceName: 'exp.control', resourcePatternType: ResourcePatternTypes.LITERAL,
        principal: 'User:guard', host: '*', operation, permissionType: AclPermissionTypes.ALLOW,
      })),
    });
    // ACLs take effect through the metadata log: wait until the broker's authorizer lists both
    // (DescribeAcls is answered from the same ACL cache that authorizes requests).
    let bindings = 0;
    await waitFor(
      async () => {
        const { resources } = await adminClient.describeAcls({
          resourceType: AclResourceTypes.TOPIC, resourceName: 'exp.control', resourcePatternType: ResourcePatternTypes.LITERAL,
          principal: 'User:guard', host: '*', operation: AclOperationTypes.ANY, permissionType: AclPermissionTypes.ALLOW,
        });
        bindings = resources.flatMap((r) => r.acls).length;
        return bindings === 2;
      },
      { timeoutMs: 30_000, message: () => `the broker lists ${bindings} of the 2 ACLs for User:guard on exp.control` },
    );
    await adminClient.disconnect();

    const send = async (kafka: Kafka, value: string) => {
      const producer = kafka.producer({ allowAutoTopicCreation: false });
      await producer.connect();
      try {
        await producer.send({ topic: 'exp.control', acks: -1, messages: [{ key: 'exp', value }] });
      } finally {
        await producer.disconnect();
      }
    };
    await send(as('guard', users.guard), 'from the guard');

    await expect(send(as('mallory', users.mallory), 'from mallory')).rejects.toThrow(/not authorized|authorization/i);
    await expect(send(as('guard', 'guessed-password'), 'with a guessed password')).rejects.toThrow(/SASL|authentication/i);

    const stored = await readTopic(admin, 'exp.control');
    expect(stored.map(({ message }) => message.value!.toString())).toEqual(['from the guard']);
  }, 120_000);
});
