import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePorts } from '../infra/kafka/freePort.ts';
import { parseDefinition, type ExperimentDefinition } from '../services/common/experimentDefinition.ts';
import { generateSigningKeyPair } from '../services/common/signing.ts';
import { SERVICE_NAMES, type ServiceName } from './drillOptions.ts';

/**
 * What the services of one drill need, made fresh for the run as `expctl keys generate` and
 * the keyring documentation describe: the control service's signing key (it signs the
 * definitions it publishes; every service checks them against the keyring), the guardian's,
 * the admin API's and the drill's own experimenter key, a keyring naming them all (and an
 * operator token), a pseudonym key, free ports for every service's /metrics and /healthz and
 * for the admin API, and the experiments.
 */
export interface DrillFiles {
  dir: string;
  stackDir: string;
  logDir: string;
  /** The sink's chDB directory: its own, apart from the stack's (`expctl stack up` opens that one). */
  sinkChdbDir: string;
  metricsPorts: Record<ServiceName, number>;
  adminApiPort: number;
  operatorToken: string;
  /** The drill's own signing identity (role experimenter): it defines and starts the experiments. */
  experimenter: { principal: string; keyFile: string };
  env: Record<ServiceName, Record<string, string>>;
}

export async function prepareDrillFiles(dir: string, sessionTimeoutMs: number, healthStallMs: number | undefined): Promise<DrillFiles> {
  const stackDir = join(dir, 'stack');
  const logDir = join(dir, 'logs');
  const keyDir = join(dir, 'keys');
  for (const d of [stackDir, logDir, keyDir]) mkdirSync(d, { recursive: true });
  const guardian = generateSigningKeyPair();
  const api = generateSigningKeyPair();
  const control = generateSigningKeyPair();
  const experimenter = generateSigningKeyPair();
  const operatorToken = randomBytes(24).toString('base64url');
  writeFileSync(join(keyDir, 'guardian.key'), guardian.privateKey, { mode: 0o600 });
  writeFileSync(join(keyDir, 'admin-api.key'), api.privateKey, { mode: 0o600 });
  writeFileSync(join(keyDir, 'control.key'), control.privateKey, { mode: 0o600 });
  writeFileSync(join(keyDir, 'chaos-experimenter.key'), experimenter.privateKey, { mode: 0o600 });
  const keyring = {
    principals: [
      { name: 'control', publicKey: control.publicKey, roles: ['control'] },
      { name: 'chaos-experimenter', publicKey: experimenter.publicKey, roles: ['experimenter'] },
      { name: 'guardian', publicKey: guardian.publicKey, roles: ['guardian'] },
      { name: 'admin-api', publicKey: api.publicKey, roles: ['operator'] },
      { name: 'chaos-operator', publicKey: generateSigningKeyPair().publicKey, roles: ['operator'] },
    ],
    apiTokens: [{ sha256: createHash('sha256').update(operatorToken, 'utf8').digest('hex'), principal: 'chaos-operator' }],
  };
  writeFileSync(join(keyDir, 'keyring.json'), JSON.stringify(keyring, null, 2));
  const ports = await freePorts(SERVICE_NAMES.length + 1);
  const metricsPorts = Object.fromEntries(SERVICE_NAMES.map((name, i) => [name, ports[i]!])) as Record<ServiceName, number>;
  const adminApiPort = ports[SERVICE_NAMES.length]!;
  const sinkChdbDir = join(dir, 'sink-chdb');
  // The services' own HEALTH_STALL_MS unless the drill is told otherwise (--health-stall-ms).
  const keyringFile = join(keyDir, 'keyring.json');
  // Every service acts only on definitions the control service signed: each needs the keyring.
  const common = { KEYRING_FILE: keyringFile, EXP_STACK_DIR: stackDir, KAFKA_SESSION_TIMEOUT_MS: String(sessionTimeoutMs), ...(healthStallMs ? { HEALTH_STALL_MS: String(healthStallMs) } : {}) };
  return {
    dir,
    stackDir,
    logDir,
    sinkChdbDir,
    metricsPorts,
    adminApiPort,
    operatorToken,
    experimenter: { principal: 'chaos-experimenter', keyFile: join(keyDir, 'chaos-experimenter.key') },
    env: {
      ingest: { ...common },
      aggregate: { ...common },
      guard: { ...common, GUARD_KEY_FILE: join(keyDir, 'guardian.key') },
      control: { ...common, CONTROL_PRINCIPAL: 'control', CONTROL_KEY_FILE: join(keyDir, 'control.key'), ADMIN_API_KEY_FILE: join(keyDir, 'admin-api.key'), ADMIN_API_PORT: String(adminApiPort) },
      // A short pause between insert and offset commit widens the window a SIGKILL of the sink
      // must survive without doubling rows (config `sink.commitDelayMs`, meant for drills).
      sink: { ...common, PSEUDONYM_KEY: randomBytes(32).toString('hex'), CHDB_PATH: sinkChdbDir, SINK_COMMIT_DELAY_MS: '100' },
    },
  };
}

/**
 * The experiments. The two running from the start are healthy (users drawn with the planned
 * shares, metric values independent of the variant, guardrail tolerances wide): the guard must
 * leave them alone through every fault. The third is started after the faults with a broken
 * split (70/30 against a planned 50/50): the guard must halt it.
 */
export const HEALTHY_EXPERIMENTS: readonly ExperimentDefinition[] = [
  {
    id: 'chaos-checkout',
    name: 'Chaos drill: checkout',
    hypothesis: 'A one-page checkout raises purchases (drill traffic: it does not).',
    owner: 'chaos-drill',
    variants: [{ id: 'control', weight: 0.5 }, { id: 'one-page', weight: 0.5 }],
    primaryMetrics: [{ name: 'purchase', type: 'conversion' }, { name: 'revenue', type: 'sum' }],
    guardrailMetrics: [{ name: 'page_load_ms', type: 'sum', harmfulDirection: 'increase', tolerance: { kind: 'relative', value: 0.5 } }],
    attributionWindowHours: 24,
    minimumSampleSize: 200,
    plannedSampleSize: 1_000_000,
  },
  {
    id: 'chaos-search',
    name: 'Chaos drill: search ranking',
    hypothesis: 'A new ranking raises clicks (drill traffic: it does not).',
    owner: 'chaos-drill',
    variants: [{ id: 'a', weight: 0.25 }, { id: 'b', weight: 0.25 }, { id: 'c', weight: 0.25 }, { id: 'd', weight: 0.25 }],
    primaryMetrics: [{ name: 'clicks', type: 'sum' }],
    guardrailMetrics: [{ name: 'page_load_ms', type: 'sum', harmfulDirection: 'increase', tolerance: { kind: 'relative', value: 0.5 } }],
    attributionWindowHours: 24,
    minimumSampleSize: 200,
    plannedSampleSize: 1_000_000,
  },
].map((d) => parseDefinition(d, 'chaos drill'));

export const BROKEN_EXPERIMENT: ExperimentDefinition = parseDefinition(
  {
    id: 'chaos-broken-split',
    name: 'Chaos drill: broken bucketing',
    hypothesis: 'Started after the faults with 70 % of users in one arm of a planned 50/50 split: the guard must halt it.',
    owner: 'chaos-drill',
    variants: [{ id: 'control', weight: 0.5 }, { id: 'treatment', weight: 0.5 }],
    primaryMetrics: [{ name: 'purchase', type: 'conversion' }],
    attributionWindowHours: 24,
    minimumSampleSize: 100,
    plannedSampleSize: 100_000,
  },
  'chaos drill',
);

/** The split the broken experiment actually gets (the planned one is 50/50). */
export const BROKEN_SPLIT: Readonly<Record<string, number>> = { control: 0.3, treatment: 0.7 };
