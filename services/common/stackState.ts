import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { writeFileAtomically } from './atomicFile.ts';
import type { Config } from './config.ts';
import { PipelineError } from './errors.ts';

/**
 * The local stack's record, `<stack.dir>/stack.json`: how later commands (and services run
 * by hand) find the broker and registry without configuration, and where they live.
 *
 * Lifecycle. The ports are chosen once, by the first `expctl stack up`, and kept until
 * `expctl stack down --purge`: a crash of the processes leaves the file as it was, so the
 * next `stack up` brings the broker and registry back on the same addresses and every
 * client that dialled them reconnects; `stack down` marks the stack stopped (`stoppedAt`)
 * but keeps the ports, so an exported KAFKA_BROKERS stays right across down and up.
 * The pids are those of the last processes `stack up` started (a chaos drill may kill them).
 */
const Port = z.number().int().min(1).max(65_535);
const StackStateSchema = z.object({
  ports: z.object({ broker: Port, controller: Port, registry: Port }),
  startedAt: z.string(),
  /** Set by `stack down`: stopped on purpose, so services refuse to start instead of dialling it. */
  stoppedAt: z.string().optional(),
  kafka: z.object({ brokers: z.array(z.string()).min(1), pid: z.number().int(), dataDir: z.string(), version: z.string() }),
  registry: z.object({ url: z.string(), pid: z.number().int(), topic: z.string(), logFile: z.string() }),
  clickhouse: z.object({ kind: z.literal('chdb'), dataDir: z.string(), database: z.string() }),
});
export type StackState = z.infer<typeof StackStateSchema>;
export type StackPorts = StackState['ports'];

export function stackStatePath(stackDir: string): string {
  return join(stackDir, 'stack.json');
}

/** The record, or undefined when there is none or it is not one this code wrote (it is never half-written: see write). */
export function readStackState(stackDir: string): StackState | undefined {
  const path = stackStatePath(stackDir);
  if (!existsSync(path)) return undefined;
  try {
    const parsed = StackStateSchema.safeParse(JSON.parse(readFileSync(path, 'utf8')));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

export function writeStackState(stackDir: string, state: StackState): void {
  writeFileAtomically(stackStatePath(stackDir), JSON.stringify(state, null, 2) + '\n');
}

export function removeStackState(stackDir: string): void {
  rmSync(stackStatePath(stackDir), { force: true });
}

export interface Endpoints {
  kafkaBrokers: string[];
  schemaRegistryUrl: string;
}

/**
 * Configured endpoints win; otherwise the local stack's, even while its processes are down
 * after a crash (it comes back on the same addresses and clients reconnect); otherwise, and
 * when the stack was stopped on purpose, a clear error.
 */
export function resolveEndpoints(config: Config): Endpoints {
  const recorded = config.kafka.brokers && config.schemaRegistry.url ? undefined : readStackState(config.stack.dir);
  const state = recorded?.stoppedAt ? undefined : recorded;
  const kafkaBrokers = config.kafka.brokers ? [...config.kafka.brokers] : state?.kafka.brokers;
  const schemaRegistryUrl = config.schemaRegistry.url ?? state?.registry.url;
  if (!kafkaBrokers || !schemaRegistryUrl) {
    const missing = !kafkaBrokers ? 'Kafka brokers' : 'schema registry';
    const variable = !kafkaBrokers ? 'KAFKA_BROKERS' : 'SCHEMA_REGISTRY_URL';
    const stack = recorded?.stoppedAt ? `the local stack in ${config.stack.dir} was stopped (\`expctl stack down\`)` : `no local stack in ${config.stack.dir}`;
    throw new PipelineError('STACK_NOT_RUNNING', `no ${missing} configured and ${stack}: run \`expctl stack up\` or set ${variable}`);
  }
  return { kafkaBrokers, schemaRegistryUrl };
}
