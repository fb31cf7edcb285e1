import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import type { Config } from './config.ts';
import { PipelineError } from './errors.ts';

/**
 * What `expctl stack up` started, written to `<stack.dir>/stack.json` so that later commands
 * (and services run by hand) find the local broker and registry without configuration.
 */
const StackStateSchema = z.object({
  startedAt: z.string(),
  kafka: z.object({ brokers: z.array(z.string()).min(1), pid: z.number().int(), dataDir: z.string(), version: z.string() }),
  registry: z.object({ url: z.string(), pid: z.number().int(), topic: z.string(), logFile: z.string() }),
  clickhouse: z.object({ kind: z.literal('chdb'), dataDir: z.string(), database: z.string() }),
});
export type StackState = z.infer<typeof StackStateSchema>;

export function stackStatePath(stackDir: string): string {
  return join(stackDir, 'stack.json');
}

export function readStackState(stackDir: string): StackState | undefined {
  const path = stackStatePath(stackDir);
  if (!existsSync(path)) return undefined;
  const parsed = StackStateSchema.safeParse(JSON.parse(readFileSync(path, 'utf8')));
  return parsed.success ? parsed.data : undefined;
}

export function writeStackState(stackDir: string, state: StackState): void {
  mkdirSync(stackDir, { recursive: true });
  const path = stackStatePath(stackDir);
  writeFileSync(`${path}.tmp`, JSON.stringify(state, null, 2) + '\n');
  renameSync(`${path}.tmp`, path); // atomic: a reader never sees half a file
}

export function removeStackState(stackDir: string): void {
  rmSync(stackStatePath(stackDir), { force: true });
}

export interface Endpoints {
  kafkaBrokers: string[];
  schemaRegistryUrl: string;
}

/** Configured endpoints win; otherwise the running local stack's; otherwise a clear error. */
export function resolveEndpoints(config: Config): Endpoints {
  const state = config.kafka.brokers && config.schemaRegistry.url ? undefined : readStackState(config.stack.dir);
  const kafkaBrokers = config.kafka.brokers ? [...config.kafka.brokers] : state?.kafka.brokers;
  const schemaRegistryUrl = config.schemaRegistry.url ?? state?.registry.url;
  if (!kafkaBrokers || !schemaRegistryUrl) {
    throw new PipelineError(
      'STACK_NOT_RUNNING',
      `no ${!kafkaBrokers ? 'Kafka brokers' : 'schema registry'} configured and no local stack in ${config.stack.dir}: run \`expctl stack up\` or set ${!kafkaBrokers ? 'KAFKA_BROKERS' : 'SCHEMA_REGISTRY_URL'}`,
    );
  }
  return { kafkaBrokers, schemaRegistryUrl };
}
