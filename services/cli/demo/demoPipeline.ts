import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';

import { join, resolve } from 'node:path';
import { startLocalBroker } from '../../../infra/kafka/localBroker.ts';
import { openClickHouse, type ClickHouseHandle } from '../../common/clickhouse.ts';
import { CONFIG_DEFAULTS } from '../../common/config.ts';
import { createKafka } from '../../common/kafka.ts';
import type { Logger } from '../../common/logger.ts';
import { createMetricsRegistry } from '../../common/metrics.ts';
import { SchemaRegistryClient } from '../../common/schemaRegistryClient.ts';
import { generateSigningKeyPair, privateKeyFromPem } from '../../common/signing.ts';
import { consumerGroup, topicNames, type TopicNames } from '../../common/topics.ts';
import { startAggregate } from '../../aggregate/aggregateService.ts';
import { startAdminApi } from '../../control/adminApi.ts';
import { startControl } from '../../control/controlService.ts';
import { Keyring } from '../../common/keyring.ts';
import { startGuard } from '../../guard/guardService.ts';
import { startIngest } from '../../ingest/ingestService.ts';
import { freshnessOf } from '../../control/verifyCommand.ts';
import { validationLimits } from '../../ingest/validateEvent.ts';
import { startRegistry } from '../../registry/server.ts';
import { startSink } from '../../sink/sinkService.ts';
import type { Progress } from '../progress.ts';

/**
 * The whole pipeline in this one process, for the demo: a fresh Kafka broker (its own JVM
 * child, from the Apache jars), the schema registry, chDB, and ingest, aggregate, guard,
 * control with its admin API, and the ClickHouse sink, wired as in production (same topics,
 * groups, transactions), with keys and tokens made for the run. Every setting is the
 * configuration's default (CONFIG_DEFAULTS), but for the admin API's port (any free one).
 */
export const MIGRATIONS_DIR = resolve(import.meta.dirname, '../../../infra/clickhouse/migrations');

/** A fresh run directory: the previous run's Kafka data, keys and chDB store go. */
export function prepareDemoDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(join(dir, 'logs'), { recursive: true });
}

export interface DemoPipeline {
  kafka: ReturnType<typeof createKafka>;
  registry: SchemaRegistryClient;
  topics: TopicNames;
  clickhouse: ClickHouseHandle;
  apiUrl: string;
  tokens: { analyst: string; operator: string };
  /** The demo's experimenter: defines, starts and concludes the experiments with signed commands. */
  experimenter: { principal: string; privateKey: ReturnType<typeof privateKeyFromPem> };
  chdbDir: string;
  groups: Record<'ingest' | 'aggregate' | 'guard' | 'control' | 'sink', string>;
  stop(): Promise<void>;
}

export async function startDemoPipeline(options: { dir: string; cacheDir: string; logger: Logger; progress: Progress }): Promise<DemoPipeline> {
  const { dir, logger, progress } = options;
  const stops: (() => Promise<void>)[] = [];
  const stopAll = async () => {
    for (const stop of stops.reverse()) await stop().catch((err: unknown) => logger.error({ err }, 'demo: a component did not stop cleanly'));
  };
  const { clickhouse: chDefaults, control: controlDefaults, guard: guardDefaults, ingest: ingestDefaults } = CONFIG_DEFAULTS;
  const prefix = CONFIG_DEFAULTS.kafka.topicPrefix;
  try {
    const broker = await progress.step('Starting Apache Kafka (KRaft, from the Apache jars)', (note) => startLocalBroker({ dataDir: join(dir, 'kafka'), cacheDir: options.cacheDir, onProgress: note }));
    stops.push(() => broker.stop());
    const registryServer = await progress.step('Starting the schema registry', () => startRegistry({ brokers: broker.brokers, logger }));
    stops.push(() => registryServer.close());
    const chdbDir = join(dir, 'chdb');
    const clickhouse = await openClickHouse({ username: chDefaults.username, password: chDefaults.password, database: chDefaults.database, dataDir: chdbDir });

    // Keys and tokens for this run: the guardian signs auto-halts, the admin API signs for
    // operators, the experimenter signs definitions and lifecycle moves, and the control
    // service signs the definitions it publishes (the only ones the services act on).
    const guardian = generateSigningKeyPair();
    const api = generateSigningKeyPair();
    const experimenter = generateSigningKeyPair();
    const control = generateSigningKeyPair();
    const tokens = { analyst: randomBytes(24).toString('base64url'), operator: randomBytes(24).toString('base64url') };
    const sha = (t: string) => createHash('sha256').update(t).digest('hex');
    const keyringJson = {
      principals: [
        { name: guardDefaults.principal, publicKey: guardian.publicKey, roles: ['guardian'] },
        { name: controlDefaults.apiPrincipal, publicKey: api.publicKey, roles: ['operator'] },
        { name: 'demo-analyst', publicKey: generateSigningKeyPair().publicKey, roles: ['analyst'] },
        { name: 'demo-operator', publicKey: generateSigningKeyPair().publicKey, roles: ['operator'] },
        { name: 'demo-experimenter', publicKey: experimenter.publicKey, roles: ['experimenter'] },
        { name: controlDefaults.principal, publicKey: control.publicKey, roles: ['control'] },
      ],
      apiTokens: [{ sha256: sha(tokens.analyst), principal: 'demo-analyst' }, { sha256: sha(tokens.operator), principal: 'demo-operator' }],
    };
    writeFileSync(join(dir, 'keyring.json'), JSON.stringify(keyringJson, null, 2));
    const keyring = Keyring.parse(keyringJson, 'demo keyring');

    const topics = topicNames(prefix);
    const registry = new SchemaRegistryClient(registryServer.url);
    const kafkaFor = (service: string) => createKafka({ brokers: broker.brokers, clientId: `demo-${service}`, logger });
    const groups = { ingest: consumerGroup(prefix, 'ingest'), aggregate: consumerGroup(prefix, 'aggregate'), guard: consumerGroup(prefix, 'guard'), control: consumerGroup(prefix, 'control'), sink: consumerGroup(prefix, 'sink') };
    const common = (service: string) => ({ kafka: kafkaFor(service), registry, topics, metrics: createMetricsRegistry(service), logger: logger.child({ service }) });

    let apiUrl = '';
    await progress.step('Starting ingest, aggregate, guard, control (with the admin API) and the ClickHouse sink', async (note) => {
      const controlService = await startControl({ ...common('control'), groupId: groups.control, keyring, apiPrincipal: controlDefaults.apiPrincipal, publisher: { principal: controlDefaults.principal, privateKey: privateKeyFromPem(control.privateKey) }, freshness: freshnessOf(controlDefaults) });
      stops.push(() => controlService.stop());
      const adminApi = await startAdminApi({ ...common('admin-api'), keyring, signer: { principal: controlDefaults.apiPrincipal, privateKey: privateKeyFromPem(api.privateKey) }, host: controlDefaults.apiHost, port: 0, authFailuresAllowed: controlDefaults.authFailuresAllowed });
      stops.push(() => adminApi.close());
      apiUrl = adminApi.url;
      const guard = await startGuard({ ...common('guard'), groupId: groups.guard, keyring, signer: { principal: guardDefaults.principal, privateKey: privateKeyFromPem(guardian.privateKey) } });
      stops.push(() => guard.stop());
      const aggregate = await startAggregate({ ...common('aggregate'), groupId: groups.aggregate, keyring });
      stops.push(() => aggregate.stop());
      const ingest = await startIngest({ ...common('ingest'), groupId: groups.ingest, limits: validationLimits(ingestDefaults), maxPayloadBytes: ingestDefaults.maxPayloadBytes, checkExperiments: ingestDefaults.checkExperiments, keyring });
      stops.push(() => ingest.stop());
      const { registry: _unused, ...sinkCommon } = common('sink');
      const sink = await startSink({ ...sinkCommon, clickhouse, migrationsDir: MIGRATIONS_DIR, groupId: groups.sink, pseudonymKey: randomBytes(32).toString('hex'), keyring });
      stops.push(() => sink.stop());
      note(`admin API and results page at ${apiUrl}/; logs in ${join(dir, 'logs', 'demo.log')}`);
    });
    return { kafka: kafkaFor('demo'), registry, topics, clickhouse, apiUrl, tokens, experimenter: { principal: 'demo-experimenter', privateKey: privateKeyFromPem(experimenter.privateKey) }, chdbDir, groups, stop: stopAll };
  } catch (err) {
    await stopAll();
    throw err;
  }
}
