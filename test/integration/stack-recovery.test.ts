import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Kafka, logLevel, type Consumer, type Producer } from 'kafkajs';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { brokerStatus } from '../../infra/kafka/localBroker.ts';
import { stackDown, stackUp } from '../../services/cli/stack/localStack.ts';
import { registryStatus } from '../../services/cli/stack/registryProcess.ts';
import { crashStackComponent } from '../../services/cli/stack/stackFaults.ts';
import { isPipelineError } from '../../services/common/errors.ts';
import { createKafka } from '../../services/common/kafka.ts';
import { createLogger } from '../../services/common/logger.ts';
import { isProcessAlive, processCommandLine } from '../../services/common/processes.ts';
import { readStackState, resolveEndpoints } from '../../services/common/stackState.ts';
import { processesOfStack, recordingProgress, runExpctl, stackTestConfig } from '../support/localStackRun.ts';
import { readTopic } from '../support/topicReader.ts';

/**
 * The local stack through faults, with real processes: a SIGKILLed broker or registry comes
 * back on its address with its data and clients reconnect; a taken port or a failing step
 * fails clearly and leaves nothing running. Each test has its own stack directory and stops
 * everything it started in `finally`, whatever happened.
 */
const dirs: string[] = [];
afterAll(async () => {
  // A safety net only: every test already stops its own stack.
  for (const dir of dirs) {
    await stackDown(stackTestConfig(dir), recordingProgress(), { purge: true }).catch(() => {});
    rmSync(dir, { recursive: true, force: true });
  }
});

function newStackDir(name: string): string {
  const dir = mkdtempSync(join(tmpdir(), `stack-${name}-`));
  dirs.push(dir);
  return dir;
}

async function upWithCli(dir: string): Promise<{ KAFKA_BROKERS: string; SCHEMA_REGISTRY_URL: string }> {
  const up = await runExpctl(['stack', 'up', '--json'], dir);
  expect(up.status, up.stderr).toBe(0);
  return JSON.parse(up.stdout) as { KAFKA_BROKERS: string; SCHEMA_REGISTRY_URL: string };
}

/** Stops every process of the stack (its records first, then anything the system still shows) and deletes it. */
async function tearDown(dir: string): Promise<void> {
  await stackDown(stackTestConfig(dir), recordingProgress(), { purge: true });
  for (const pid of processesOfStack(dir)) process.kill(pid, 'SIGKILL');
  rmSync(dir, { recursive: true, force: true });
}


async function registerSchema(url: string, subject: string, schema: object): Promise<number> {
  const response = await fetch(`${url}/subjects/${subject}/versions`, {
    method: 'POST',
    headers: { 'content-type': 'application/vnd.schemaregistry.v1+json' },
    body: JSON.stringify({ schema: JSON.stringify(schema) }),
  });
  expect(response.status, await response.clone().text()).toBe(200);
  return ((await response.json()) as { id: number }).id;
}

async function subjectsOf(url: string): Promise<string[]> {
  return (await (await fetch(`${url}/subjects`)).json()) as string[];
}

async function occupy(port: number): Promise<Server> {
  const server = createServer((socket) => socket.destroy());
  await new Promise<void>((ok, fail) => server.once('error', fail).listen(port, '127.0.0.1', () => ok()));
  return server;
}

const values = (messages: { message: { value: Buffer | null } }[]) => messages.map((m) => m.message.value?.toString());
const RECORD_SCHEMA = { type: 'record', name: 'Probe', fields: [{ name: 'n', type: 'int' }] };

describe('the local stack through faults', () => {
  it('a SIGKILLed broker comes back on the same address with its topics, and clients made before the crash reconnect', async () => {
    const dir = newStackDir('broker-crash');
    let producer: Producer | undefined;
    let consumer: Consumer | undefined;
    try {
      const endpoints = await upWithCli(dir);
      const before = readStackState(dir)!;
      // Clients exactly as the services make them (services/common/kafka.ts), on the address from stack.json.
      const kafka = createKafka({ brokers: resolveEndpoints(stackTestConfig(dir)).kafkaBrokers, clientId: 'crash-survivor', logger: createLogger({ level: 'silent' }) });
      const admin = kafka.admin();
      await admin.connect();
      await admin.createTopics({ topics: [{ topic: 'survives', numPartitions: 1 }], waitForLeaders: true });
      await admin.disconnect();
      const committedOffset = async () => {
        const reader = new Kafka({ brokers: [endpoints.KAFKA_BROKERS], clientId: 'offsets', logLevel: logLevel.NOTHING }).admin();
        await reader.connect();
        try {
          return (await reader.fetchOffsets({ groupId: 'crash-survivor', topics: ['survives'] }))[0]?.partitions[0]?.offset;
        } finally {
          await reader.disconnect();
        }
      };
      producer = kafka.producer();
      await producer.connect();
      consumer = kafka.consumer({ groupId: 'crash-survivor', maxWaitTimeInMs: 200 });
      await consumer.connect();
      await consumer.subscribe({ topic: 'survives', fromBeginning: true });
      const seen: string[] = [];
      await consumer.run({ eachMessage: async ({ message }) => void seen.push(message.value!.toString()) });
      await producer.send({ topic: 'survives', messages: Array.from({ length: 10 }, (_, i) => ({ value: `before-${i}` })) });
      await vi.waitFor(() => expect(seen).toHaveLength(10), { timeout: 60_000, interval: 100 });
      await vi.waitFor(async () => expect(await committedOffset()).toBe('10'), { timeout: 30_000, interval: 200 });
      await registerSchema(endpoints.SCHEMA_REGISTRY_URL, 'before-value', RECORD_SCHEMA);

      // A crash, as a chaos drill makes one: SIGKILL the pid from stack.json; stackUp as soon as
      // the broker no longer shows as itself (its other threads may still be dying, holding the port).
      process.kill(before.kafka.pid, 'SIGKILL');
      await vi.waitFor(() => expect(processCommandLine(before.kafka.pid)).toBe(''), { timeout: 30_000, interval: 20 });
      expect(brokerStatus(before.kafka.dataDir).running).toBe(false);

      // stackUp in-process restarts only the broker.
      const progress = recordingProgress();
      const { state, started } = await stackUp(stackTestConfig(dir), progress);
      expect(started).toEqual(['kafka']);
      expect(state.kafka.brokers).toEqual(before.kafka.brokers);
      expect(state.kafka.pid).not.toBe(before.kafka.pid);
      expect(isProcessAlive(state.kafka.pid)).toBe(true);
      expect(readStackState(dir)).toEqual(state);
      expect(state.registry).toEqual(before.registry); // untouched: it was alive
      expect(progress.lines.join('\n')).not.toMatch(/ClickHouse/); // a repair leaves chDB to whoever holds it

      // The records and the group's offsets from before the crash are still there (the KRaft data was kept) ...
      expect(await committedOffset()).toBe('10');
      const reader = new Kafka({ brokers: [endpoints.KAFKA_BROKERS], clientId: 'reader', logLevel: logLevel.NOTHING });
      expect(values(await readTopic(reader, 'survives'))).toEqual(seen.slice(0, 10));
      // ... and the producer and the group consumer created before the crash work again.
      await producer.send({ topic: 'survives', messages: Array.from({ length: 10 }, (_, i) => ({ value: `after-${i}` })) });
      await vi.waitFor(() => expect(seen.filter((v) => v.startsWith('after-'))).toHaveLength(10), { timeout: 120_000, interval: 200 });
      expect(seen.filter((v) => v.startsWith('before-'))).toHaveLength(10); // no replay: the group resumed at its offset

      // The registry, which lived through the outage, reconnects: it still serves, and stores again
      // once its kafkajs clients are past their backoff (a repeated registration is idempotent).
      expect(await subjectsOf(endpoints.SCHEMA_REGISTRY_URL)).toEqual(['before-value']);
      await vi.waitFor(() => registerSchema(endpoints.SCHEMA_REGISTRY_URL, 'after-value', RECORD_SCHEMA), { timeout: 90_000, interval: 1_000 });
      expect((await subjectsOf(endpoints.SCHEMA_REGISTRY_URL)).sort()).toEqual(['after-value', 'before-value']);
    } finally {
      await consumer?.disconnect().catch(() => {});
      await producer?.disconnect().catch(() => {});
      await tearDown(dir);
    }
    expect(processesOfStack(dir)).toEqual([]);
  }, 300_000);

  it('a SIGKILLed registry comes back on the same URL with its subjects', async () => {
    const dir = newStackDir('registry-crash');
    try {
      const endpoints = await upWithCli(dir);
      const before = readStackState(dir)!;
      const id = await registerSchema(endpoints.SCHEMA_REGISTRY_URL, 'kept-value', RECORD_SCHEMA);

      expect(await crashStackComponent(stackTestConfig(dir), 'schema-registry')).toEqual({ pid: before.registry.pid });
      expect(isProcessAlive(before.registry.pid)).toBe(false);
      expect(registryStatus(dir).running).toBe(false);

      const { state, started } = await stackUp(stackTestConfig(dir), recordingProgress());
      expect(started).toEqual(['schema-registry']);
      expect(state.registry.url).toBe(endpoints.SCHEMA_REGISTRY_URL);
      expect(state.registry.pid).not.toBe(before.registry.pid);
      expect(readStackState(dir)?.registry.pid).toBe(state.registry.pid);
      expect(state.kafka.pid).toBe(before.kafka.pid); // the broker was alive and kept running
      expect(await subjectsOf(endpoints.SCHEMA_REGISTRY_URL)).toEqual(['kept-value']);
      const schema = (await (await fetch(`${endpoints.SCHEMA_REGISTRY_URL}/schemas/ids/${id}`)).json()) as { schema: string };
      expect(JSON.parse(schema.schema)).toEqual(RECORD_SCHEMA);

      // Everything alive: another stack up changes nothing.
      const again = await stackUp(stackTestConfig(dir), recordingProgress());
      expect(again).toMatchObject({ alreadyRunning: true, started: [] });
      expect(again.state).toEqual(state);
    } finally {
      await tearDown(dir);
    }
    expect(processesOfStack(dir)).toEqual([]);
  }, 300_000);

  it('keeps its ports across down and up, and refuses to move when one is taken: clear error, nothing left running', async () => {
    const dir = newStackDir('port-taken');
    let squatter: Server | undefined;
    try {
      const endpoints = await upWithCli(dir);
      const down = await runExpctl(['stack', 'down'], dir);
      expect(down.status, down.stderr).toBe(0);
      const stopped = readStackState(dir)!;
      expect(stopped.stoppedAt).toBeDefined();
      expect(processesOfStack(dir)).toEqual([]);
      // A stopped stack is not silently dialled by services started meanwhile.
      expect(() => resolveEndpoints(stackTestConfig(dir))).toThrow(/was stopped/);

      squatter = await occupy(stopped.ports.broker);
      const refused = await runExpctl(['stack', 'up'], dir);
      expect(refused.status).toBe(1);
      expect(refused.stderr).toContain(`port 127.0.0.1:${stopped.ports.broker}, kept for the Kafka broker`);
      expect(refused.stderr).toContain('stack down --purge');
      expect(processesOfStack(dir)).toEqual([]);
      expect(readStackState(dir)).toEqual(stopped);

      await new Promise<void>((done) => squatter!.close(() => done()));
      squatter = undefined;
      expect(await upWithCli(dir)).toMatchObject(endpoints);
      expect(readStackState(dir)?.stoppedAt).toBeUndefined();
    } finally {
      squatter?.close();
      await tearDown(dir);
    }
    expect(processesOfStack(dir)).toEqual([]);
  }, 300_000);

  it('stops the broker it started when the registry fails to start', async () => {
    const dir = newStackDir('registry-fails');
    let squatter: Server | undefined;
    let brokerPid: number | undefined;
    try {
      // The registry's port is taken between the check and the registry's bind: a real race, made certain.
      const progress = recordingProgress(async (label) => {
        const registryPort = /^Starting the schema registry on 127\.0\.0\.1:(\d+)$/.exec(label)?.[1];
        if (registryPort === undefined) return;
        brokerPid = brokerStatus(join(dir, 'kafka')).pid;
        squatter = await occupy(Number(registryPort));
      });
      const failure = await stackUp(stackTestConfig(dir), progress).then(() => undefined, (err: unknown) => err);
      expect(isPipelineError(failure, 'STACK_PORT_IN_USE')).toBe(true);
      expect((failure as Error).message).toMatch(/^stack up failed while starting the schema registry: the schema registry could not listen on 127\.0\.0\.1:\d+/);
      expect((failure as Error).message).toContain('stopped what this call had started (the Kafka broker)');
      expect(brokerPid).toBeGreaterThan(0);
      expect(isProcessAlive(brokerPid!)).toBe(false);
      expect(processesOfStack(dir)).toEqual([]);
      expect(readStackState(dir)).toBeUndefined();
    } finally {
      squatter?.close();
      await tearDown(dir);
    }
  }, 300_000);

  it('stops the broker and the registry it started when the migrations fail', async () => {
    const dir = newStackDir('migrations-fail');
    try {
      const notADirectory = join(dir, 'chdb-is-a-file');
      writeFileSync(notADirectory, 'chDB cannot open a data directory here');
      const up = await runExpctl(['stack', 'up'], dir, { CHDB_PATH: notADirectory });
      expect(up.status).toBe(1);
      expect(up.stderr).toMatch(/stack up failed while applying the ClickHouse migrations/);
      expect(up.stderr).toContain('stopped what this call had started (the schema registry, the Kafka broker)');
      expect(processesOfStack(dir)).toEqual([]);
      expect(readStackState(dir)).toBeUndefined();
    } finally {
      await tearDown(dir);
    }
  }, 300_000);
});

