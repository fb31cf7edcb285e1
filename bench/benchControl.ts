import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Kafka } from 'kafkajs';
import { applyDefinitions, moveExperiment } from '../services/cli/experiments/controlCommands.ts';
import type { ExperimentDefinition } from '../services/common/experimentDefinition.ts';
import type { Logger } from '../services/common/logger.ts';
import type { SchemaRegistryClient } from '../services/common/schemaRegistryClient.ts';
import { generateSigningKeyPair, privateKeyFromPem } from '../services/common/signing.ts';
import type { TopicNames } from '../services/common/topics.ts';
import { spawnBenchService, type BenchService } from './benchProcess.ts';

/**
 * Experiments for a benchmark, defined and started as in production: a keyring for the run
 * (the control service's key, an experimenter's, the guardian's), the control service as its
 * own process, and the experimenter's signed DEFINE and START commands. The services under
 * benchmark get `env` (the keyring) so they accept what the control service published.
 */
export interface BenchAccess {
  /** KEYRING_FILE, CONTROL_KEY_FILE and GUARD_KEY_FILE for the run. */
  env: Record<string, string>;
  experimenter: { principal: string; privateKey: ReturnType<typeof privateKeyFromPem> };
}

export function benchAccess(): BenchAccess {
  const dir = mkdtempSync(join(tmpdir(), 'bench-keys-'));
  const keys = { control: generateSigningKeyPair(), 'bench-experimenter': generateSigningKeyPair(), guardian: generateSigningKeyPair() };
  const roles = { control: ['control'], 'bench-experimenter': ['experimenter'], guardian: ['guardian'] };
  writeFileSync(join(dir, 'keyring.json'), JSON.stringify({ principals: Object.entries(keys).map(([name, k]) => ({ name, publicKey: k.publicKey, roles: roles[name as keyof typeof roles] })) }));
  for (const [name, k] of Object.entries(keys)) writeFileSync(join(dir, `${name}.key`), k.privateKey, { mode: 0o600 });
  return {
    env: { KEYRING_FILE: join(dir, 'keyring.json'), CONTROL_KEY_FILE: join(dir, 'control.key'), GUARD_KEY_FILE: join(dir, 'guardian.key') },
    experimenter: { principal: 'bench-experimenter', privateKey: privateKeyFromPem(keys['bench-experimenter'].privateKey) },
  };
}

/**
 * Starts the control service (env: the pipeline's, with `access.env`), defines and starts
 * the experiments through it, and returns it running (stop it when the benchmark does not
 * need it).
 */
export async function defineThroughControl(context: { kafka: Kafka; registry: SchemaRegistryClient; topics: TopicNames; logger: Logger }, env: Record<string, string>, access: BenchAccess, definitions: ExperimentDefinition[]): Promise<BenchService> {
  const control = spawnBenchService('control', { ...env, ...access.env, ADMIN_API_PORT: '0', LOG_LEVEL: 'info' });
  const deadline = Date.now() + 60_000;
  while (!/"msg":"control started"/.test(control.log())) {
    if (Date.now() > deadline || control.child.exitCode !== null) throw new Error(`the control service did not start:\n${control.log().slice(-2_000)}`);
    await sleep(100);
  }
  const outcomes = await applyDefinitions(context, access.experimenter, definitions, 'benchmark setup');
  for (const d of definitions) outcomes.push(await moveExperiment(context, access.experimenter, d.id, 'START', 'benchmark setup'));
  const refused = outcomes.filter((o) => o.decision !== 'ACCEPTED');
  if (refused.length > 0) throw new Error(`the control service did not accept: ${refused.map((o) => `${o.action} ${o.experimentId}: ${o.reason}`).join('; ')}`);
  return control;
}
