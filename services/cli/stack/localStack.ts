import { rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { brokerStatus, startLocalBroker, stopBrokerInDir } from '../../../infra/kafka/localBroker.ts';
import { openClickHouse } from '../../common/clickhouse.ts';
import type { Config } from '../../common/config.ts';
import { errorMessage, isPipelineError, PipelineError } from '../../common/errors.ts';
import { applyMigrations } from '../../common/migrations.ts';
import { readStackState, writeStackState, type StackPorts, type StackState } from '../../common/stackState.ts';
import type { Progress } from '../progress.ts';
import { registryStatus, startRegistryProcess, stopRegistryInDir } from './registryProcess.ts';
import { waitWhileDying } from './stackFaults.ts';
import { assertPortsFree, chooseStackPorts, STACK_HOST } from './stackPorts.ts';
import { StartedProcesses } from './startedProcesses.ts';

/**
 * The embedded stack behind `expctl stack up | down | status`: a real Kafka broker (KRaft,
 * from the Apache jars), the project's schema registry in its own process, and the chDB
 * store with migrations applied. State, data and logs live under `stack.dir`; the record
 * of ports and pids is stack.json (its lifecycle is described in stackState.ts).
 */
export const MIGRATIONS_DIR = resolve(import.meta.dirname, '../../../infra/clickhouse/migrations');
const REGISTRY_TOPIC = '_schemas';

export type ComponentName = 'kafka' | 'schema-registry' | 'clickhouse';

export interface ComponentStatus {
  name: ComponentName;
  running: boolean;
  endpoint: string;
  detail: string;
}

export interface StackUpResult {
  state: StackState;
  /** Nothing had to be started. */
  alreadyRunning: boolean;
  /** What this call (re)started. */
  started: ComponentName[];
}

/**
 * Starts the local stack, or brings back the parts of it that died, always on the ports
 * chosen by the first `stack up` (see stackState.ts), so clients that dialled them reconnect.
 *
 * - Nothing recorded, or stopped by `stack down`: starts the broker (KRaft data kept if it
 *   exists), the registry, and applies the ClickHouse migrations (opening chDB in this
 *   process, so the sink must not hold it at that moment).
 * - Recorded as up but the broker and/or the registry is dead (crashed, SIGKILLed): restarts
 *   only what is dead, with its data, and does not touch chDB (a running sink may hold it).
 *   This is what a chaos drill calls: SIGKILL `readStackState(dir).kafka.pid` or
 *   `.registry.pid` and wait until it has exited (`crashStackComponent` in stackFaults.ts
 *   does both; until a killed process is gone it still counts as running), then
 *   `await stackUp(config, progress)`: it returns within seconds, once the broker serves
 *   groups and transactions and the registry has replayed its topic, and stack.json then
 *   holds the new pids.
 * - A port the stack keeps is taken by another process: fails with STACK_PORT_IN_USE naming
 *   the port and what to do, before starting anything.
 * - Any step fails: every process this call started is stopped again (what was already
 *   running is left alone), stack.json stays as it was, and the error names the step.
 */
export async function stackUp(config: Config, progress: Progress): Promise<StackUpResult> {
  const dir = config.stack.dir;
  const kafkaDir = join(dir, 'kafka');
  const previous = readStackState(dir);
  const ports = previous?.ports ?? (await chooseStackPorts());
  const running = runningComponents(dir, kafkaDir, ports);
  const wasUp = previous !== undefined && previous.stoppedAt === undefined;
  if (wasUp && running.broker && running.registry) {
    const state = withPids(previous, running.broker.pid, running.registry.pid);
    if (state !== previous) writeStackState(dir, state);
    return { state, alreadyRunning: true, started: [] };
  }
  if (wasUp) {
    const dead = [running.broker ? undefined : 'the Kafka broker', running.registry ? undefined : 'the schema registry'].filter(Boolean);
    progress.info(`${dead.join(' and ')} of the local stack in ${dir} ${dead.length > 1 ? 'are down; restarting them' : 'is down; restarting only that'}, on the same ports`);
  }

  const started = new StartedProcesses();
  let step = 'checking the ports the stack keeps';
  try {
    // A process killed a moment ago may still be releasing its port.
    if (!running.broker) await waitWhileDying(previous?.kafka.pid);
    if (!running.registry) await waitWhileDying(previous?.registry.pid);
    await assertPortsFree(ports, [...(running.broker ? [] : (['broker', 'controller'] as const)), ...(running.registry ? [] : (['registry'] as const))], dir);

    step = 'starting Apache Kafka';
    const broker = running.broker ?? (await progress.step(`Starting Apache Kafka on ${STACK_HOST}:${ports.broker}`, async (note) => {
      const b = await startLocalBroker({ dataDir: kafkaDir, cacheDir: config.stack.cacheDir, detached: true, brokerPort: ports.broker, controllerPort: ports.controller, onProgress: note, ...(config.stack.kafkaVersion ? { version: config.stack.kafkaVersion } : {}) });
      started.add('the Kafka broker', () => b.stop());
      return { pid: b.pid, version: b.version };
    }));

    step = 'starting the schema registry';
    const registry = running.registry ?? (await progress.step(`Starting the schema registry on ${STACK_HOST}:${ports.registry}`, async (note) => {
      const r = await startRegistryProcess({ brokers: [brokerAddress(ports)], topic: REGISTRY_TOPIC, dir, port: ports.registry });
      started.add('the schema registry', () => stopRegistryInDir(dir));
      note(`pid ${r.pid}, log ${r.logFile}`);
      return { pid: r.pid };
    }));

    if (!wasUp) {
      step = 'applying the ClickHouse migrations';
      await progress.step('Preparing ClickHouse (chDB) and applying migrations', (note) => applyStackMigrations(config, note));
    }

    const state: StackState = {
      ports,
      startedAt: new Date().toISOString(),
      kafka: { brokers: [brokerAddress(ports)], pid: broker.pid, dataDir: kafkaDir, version: broker.version },
      registry: { url: registryUrl(ports), pid: registry.pid, topic: REGISTRY_TOPIC, logFile: join(dir, 'registry.log') },
      clickhouse: { kind: 'chdb', dataDir: config.clickhouse.dataDir, database: config.clickhouse.database },
    };
    writeStackState(dir, state);
    return { state, alreadyRunning: started.names.length === 0, started: [...(running.broker ? [] : ['kafka' as const]), ...(running.registry ? [] : ['schema-registry' as const])] };
  } catch (err) {
    const stopped = await started.stopAll((name, outcome) => progress.info(`stopped ${name} (started by this call): ${outcome}`));
    const untouched = [running.broker ? 'the Kafka broker' : undefined, running.registry ? 'the schema registry' : undefined].filter(Boolean);
    const aftermath = [
      stopped.length > 0 ? `stopped what this call had started (${stopped.join(', ')})` : 'this call had started nothing',
      ...(untouched.length > 0 ? [`left ${untouched.join(' and ')} running as before`] : []),
    ].join('; ');
    throw new PipelineError(isPipelineError(err) ? err.code : 'STACK_START_FAILED', `stack up failed while ${step}: ${errorMessage(err)}\n(${aftermath})`, {
      cause: err,
      context: { step, stackDir: dir, ...(isPipelineError(err) ? err.context : {}) },
    });
  }
}

/**
 * Stops the registry, then the broker. The ports stay recorded (stack.json says the stack
 * was stopped), so the next `stack up` comes back on the same addresses; `purge` deletes
 * the whole stack directory, ports included.
 */
export async function stackDown(config: Config, progress: Progress, options: { purge?: boolean } = {}): Promise<void> {
  const dir = config.stack.dir;
  const state = readStackState(dir);
  await progress.step('Stopping the schema registry', async (note) => note((await stopRegistryInDir(dir)) ? 'stopped' : 'was not running'));
  const kafkaDir = state?.kafka.dataDir ?? join(dir, 'kafka');
  await progress.step('Stopping Apache Kafka', async (note) => note((await stopBrokerInDir(kafkaDir)) ? 'stopped' : 'was not running'));
  if (options.purge) {
    rmSync(dir, { recursive: true, force: true });
    progress.info(`removed ${dir} (Kafka data, registry topic, chDB data, the remembered ports)`);
  } else if (state) {
    writeStackState(dir, { ...state, stoppedAt: new Date().toISOString() });
    progress.info(`ports kept for the next \`expctl stack up\`: Kafka ${brokerAddress(state.ports)}, schema registry ${registryUrl(state.ports)} (--purge forgets them)`);
  }
}

export async function stackStatus(config: Config): Promise<ComponentStatus[]> {
  const dir = config.stack.dir;
  const state = readStackState(dir);
  const kafkaDir = state?.kafka.dataDir ?? join(dir, 'kafka');
  const broker = brokerStatus(kafkaDir);
  const registry = registryStatus(dir);
  const registryUp = state !== undefined && registry.running && (await registryAnswers(state.registry.url));
  const down = (what: string) => (!state ? 'not running' : state.stoppedAt ? `stopped; \`expctl stack up\` starts it on the same port` : `${what}; \`expctl stack up\` restarts it on the same port`);
  return [
    {
      name: 'kafka',
      running: broker.running,
      endpoint: broker.brokers?.join(',') ?? state?.kafka.brokers.join(',') ?? '-',
      detail: broker.running ? `Apache Kafka ${broker.version ?? '?'}, pid ${broker.pid}, data ${kafkaDir}` : down('not running (crashed?)'),
    },
    {
      name: 'schema-registry',
      running: registryUp,
      endpoint: state?.registry.url ?? '-',
      detail: registryUp ? `pid ${registry.pid}, topic ${state.registry.topic}, log ${state.registry.logFile}` : `${down(registry.running ? `pid ${registry.pid} not answering` : 'not running (crashed?)')}${state ? ` (log ${state.registry.logFile})` : ''}`,
    },
    {
      name: 'clickhouse',
      running: true,
      endpoint: config.clickhouse.url ?? `chdb:${config.clickhouse.dataDir}`,
      detail: config.clickhouse.url ? 'ClickHouse server (CLICKHOUSE_URL)' : `in-process chDB engine, database ${config.clickhouse.database}; opened by each process that needs it`,
    },
  ];
}

/** The broker and registry that are running on the stack's ports (anything else is restarted). */
function runningComponents(dir: string, kafkaDir: string, ports: StackPorts) {
  const broker = brokerStatus(kafkaDir);
  const registry = registryStatus(dir);
  return {
    broker: broker.running && broker.pid !== undefined && broker.brokers?.[0] === brokerAddress(ports) ? { pid: broker.pid, version: broker.version ?? '?' } : undefined,
    registry: registry.running && registry.pid !== undefined && registry.port === ports.registry ? { pid: registry.pid } : undefined,
  };
}

/** The same state, or a copy with the live pids when they changed (a registry adopted from an interrupted `stack up`). */
function withPids(state: StackState, brokerPid: number, registryPid: number): StackState {
  if (state.kafka.pid === brokerPid && state.registry.pid === registryPid) return state;
  return { ...state, kafka: { ...state.kafka, pid: brokerPid }, registry: { ...state.registry, pid: registryPid } };
}

async function applyStackMigrations(config: Config, note: (message: string) => void): Promise<void> {
  const ch = await openClickHouse({ ...config.clickhouse, url: undefined });
  try {
    const result = await applyMigrations(ch.client, MIGRATIONS_DIR);
    note(`${result.applied.length} migration(s) applied, ${result.alreadyApplied.length} already in place`);
  } finally {
    await ch.close();
  }
}

function brokerAddress(ports: StackPorts): string {
  return `${STACK_HOST}:${ports.broker}`;
}

function registryUrl(ports: StackPorts): string {
  return `http://${STACK_HOST}:${ports.registry}`;
}

async function registryAnswers(url: string): Promise<boolean> {
  try {
    const response = await fetch(`${url}/subjects`, { signal: AbortSignal.timeout(2_000) });
    return response.ok;
  } catch {
    return false;
  }
}
