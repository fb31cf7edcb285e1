import { spawn, execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { writeFileAtomically } from '../../services/common/atomicFile.ts';
import { PipelineError } from '../../services/common/errors.ts';
import { logTail } from '../../services/common/logTail.ts';
import { isProcessAlive, processCommandLine, stopProcess } from '../../services/common/processes.ts';
import { JVM_OPTIONS, LOG4J2_PROPERTIES, SCRAM_MECHANISM, serverProperties, type BrokerSecurity } from './brokerConfig.ts';
import { DEFAULT_KAFKA_VERSION, ensureKafkaInstalled } from './fetchKafka.ts';
import { freePorts, portIsFree } from './freePort.ts';
import { waitUntilBrokerServes } from './readiness.ts';

export { DEFAULT_KAFKA_VERSION, ensureKafkaInstalled };

/**
 * Runs a real single-node Apache Kafka (KRaft) in its own data directory:
 *   <dataDir>/logs           the broker's log dirs (formatted once, kept across restarts)
 *   <dataDir>/broker.log     its output
 *   <dataDir>/broker.json    pid, endpoints, ports, version: how other processes find and stop it
 *
 * Without `brokerPort` / `controllerPort` each start picks free ports. With them the broker
 * comes back where it was (clients keep their bootstrap address); a port taken by another
 * process is then an error, never a silent move.
 */
export interface LocalBrokerOptions {
  dataDir: string;
  cacheDir: string;
  version?: string;
  host?: string;
  startTimeoutMs?: number;
  /** Outlive this process (for `expctl stack up`); otherwise it is stopped when this process exits. */
  detached?: boolean;
  onProgress?: (message: string) => void;
  /** SASL/SCRAM and ACLs instead of an open plaintext listener (see BrokerSecurity). */
  security?: BrokerSecurity;
  /** The client listener's port; absent: a free one. */
  brokerPort?: number;
  /** The KRaft controller listener's port; absent: a free one. */
  controllerPort?: number;
}

export interface LocalBroker {
  brokers: string[];
  brokerPort: number;
  controllerPort: number;
  pid: number;
  dataDir: string;
  version: string;
  /** Milliseconds from spawning the JVM to the broker serving groups and transactions. */
  startMs: number;
  stop(timeoutMs?: number): Promise<void>;
}

interface BrokerRecord {
  pid: number;
  brokers: string[];
  controllerPort?: number;
  version: string;
  startedAt: string;
}

const run = promisify(execFile);
const JAVA_MISSING = 'java was not found: the local Kafka broker needs Java 17 (e.g. `apt-get install openjdk-17-jre-headless`)';

export async function startLocalBroker(options: LocalBrokerOptions): Promise<LocalBroker> {
  const say = options.onProgress ?? (() => {});
  const host = options.host ?? '127.0.0.1';
  const install = await ensureKafkaInstalled({ cacheDir: options.cacheDir, ...(options.version ? { version: options.version } : {}), onProgress: say });
  mkdirSync(options.dataDir, { recursive: true });
  if (await stopBrokerInDir(options.dataDir)) say('stopped a broker left running in this directory by an earlier run');

  const { brokerPort, controllerPort } = await brokerPorts(options, host);
  const logDir = join(options.dataDir, 'logs');
  const propertiesFile = join(options.dataDir, 'server.properties');
  const log4jFile = join(options.dataDir, 'log4j2.properties');
  writeFileSync(propertiesFile, serverProperties({ host, ports: { broker: brokerPort, controller: controllerPort }, logDir, ...(options.security ? { security: options.security } : {}) }));
  writeFileSync(log4jFile, LOG4J2_PROPERTIES);
  const javaArgs = (main: string, ...args: string[]) => [...JVM_OPTIONS, `-Dlog4j2.configurationFile=${log4jFile}`, '-cp', install.classpath, main, ...args];

  if (!existsSync(join(logDir, 'meta.properties'))) {
    say('formatting KRaft storage');
    // SCRAM credentials of a KRaft cluster are created with its storage.
    const scram = options.security ? [options.security.superUser, ...options.security.users].flatMap((u) => ['--add-scram', `${SCRAM_MECHANISM}=[name=${u.name},password=${u.password}]`]) : [];
    await run('java', javaArgs('kafka.tools.StorageTool', 'format', '-t', newClusterId(), '-c', propertiesFile, '--ignore-formatted', ...scram)).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') throw new PipelineError('STACK_START_FAILED', JAVA_MISSING);
      throw err;
    });
  }

  const logFile = join(options.dataDir, 'broker.log');
  const out = openSync(logFile, 'a');
  const spawnedAt = Date.now();
  const child = spawn('java', javaArgs('kafka.Kafka', propertiesFile), { detached: options.detached ?? false, stdio: ['ignore', out, out] });
  closeSync(out);
  const pid = child.pid;
  if (pid === undefined) throw new PipelineError('STACK_START_FAILED', JAVA_MISSING);
  let exited = false;
  child.once('exit', () => {
    exited = true;
  });
  const stopOnExit = () => {
    if (!exited) process.kill(pid, 'SIGKILL');
  };
  if (options.detached) child.unref();
  else process.once('exit', stopOnExit);

  const brokers = [`${host}:${brokerPort}`];
  const version = install.version;
  writeFileAtomically(join(options.dataDir, 'broker.json'), JSON.stringify({ pid, brokers, controllerPort, version, startedAt: new Date().toISOString() } satisfies BrokerRecord, null, 2));
  say(`broker starting, pid ${pid}, ${brokers[0]}`);
  try {
    await waitUntilBrokerServes(brokers, { deadline: spawnedAt + (options.startTimeoutMs ?? 120_000), isAlive: () => !exited && isProcessAlive(pid), ...(options.security ? { sasl: { mechanism: 'scram-sha-256' as const, username: options.security.superUser.name, password: options.security.superUser.password } } : {}) });
  } catch (err) {
    process.removeListener('exit', stopOnExit);
    await stopProcess(pid, 5_000);
    rmSync(join(options.dataDir, 'broker.json'), { force: true });
    throw new PipelineError('STACK_START_FAILED', `${(err as Error).message}; last lines of ${logFile}:\n${logTail(logFile, 30)}`, { cause: err, context: { port: brokerPort } });
  }
  const startMs = Date.now() - spawnedAt;
  say(`broker ready in ${(startMs / 1000).toFixed(1)} s`);
  return {
    brokers,
    brokerPort,
    controllerPort,
    pid,
    dataDir: options.dataDir,
    version,
    startMs,
    stop: async (timeoutMs?: number) => {
      process.removeListener('exit', stopOnExit);
      await stopBrokerInDir(options.dataDir, timeoutMs);
    },
  };
}

/**
 * The ports to listen on: the requested ones, checked free now (so a taken one is named
 * instead of surfacing as a bind error in the broker log), and free ones for the rest.
 */
async function brokerPorts(options: LocalBrokerOptions, host: string): Promise<{ brokerPort: number; controllerPort: number }> {
  for (const [listener, port] of [['broker', options.brokerPort], ['controller', options.controllerPort]] as const) {
    if (port === undefined) continue;
    if (!(await portIsFree(port, host))) {
      throw new PipelineError('STACK_PORT_IN_USE', `the Kafka ${listener} port ${host}:${port} is in use by another process`, { context: { port, listener } });
    }
  }
  const fixed = [options.brokerPort, options.controllerPort].filter((p): p is number => p !== undefined);
  const spare = (await freePorts(3, host)).filter((p) => !fixed.includes(p));
  return { brokerPort: options.brokerPort ?? spare.shift()!, controllerPort: options.controllerPort ?? spare.shift()! };
}

/** Stops the broker recorded in `dataDir` (if it is still the same process); true if one was running. */
export async function stopBrokerInDir(dataDir: string, timeoutMs = 15_000): Promise<boolean> {
  const record = readBrokerRecord(dataDir);
  if (!record) return false;
  const running = isOurBroker(record.pid, dataDir);
  if (running) await stopProcess(record.pid, timeoutMs);
  rmSync(join(dataDir, 'broker.json'), { force: true });
  return running;
}

export function brokerStatus(dataDir: string): { running: boolean; pid?: number; brokers?: string[]; controllerPort?: number; version?: string } {
  const record = readBrokerRecord(dataDir);
  if (!record || !isOurBroker(record.pid, dataDir)) return { running: false };
  return { running: true, pid: record.pid, brokers: record.brokers, version: record.version, ...(record.controllerPort ? { controllerPort: record.controllerPort } : {}) };
}

/**
 * Cleans up after crashed test runs: each subdirectory of `root` belongs to a run whose pid
 * is in `owner.pid`; when that process is gone, its broker is stopped and the directory
 * removed. Returns how many directories were reaped.
 */
export async function reapStaleBrokers(root: string, options: { keep?: string } = {}): Promise<number> {
  if (!existsSync(root)) return 0;
  let reaped = 0;
  for (const entry of readdirSync(root, { withFileTypes: true })) {
    if (!entry.isDirectory()) continue;
    const dir = join(root, entry.name);
    if (dir === options.keep) continue;
    const owner = Number(readText(join(dir, 'owner.pid')));
    if (Number.isInteger(owner) && owner > 0 && isProcessAlive(owner)) continue;
    for (const candidate of [dir, join(dir, 'kafka')]) await stopBrokerInDir(candidate, 5_000);
    rmSync(dir, { recursive: true, force: true });
    reaped++;
  }
  return reaped;
}

/** A Kafka Uuid as its tools print it: 16 random bytes, base64url; Kafka avoids a leading '-'. */
function newClusterId(): string {
  for (;;) {
    const id = randomBytes(16).toString('base64url');
    if (!id.startsWith('-')) return id;
  }
}

function readBrokerRecord(dataDir: string): BrokerRecord | undefined {
  const text = readText(join(dataDir, 'broker.json'));
  if (!text) return undefined;
  try {
    return JSON.parse(text) as BrokerRecord;
  } catch {
    return undefined;
  }
}

/** A pid file can outlive its process and the pid be reused: check it is a Kafka broker on this directory. */
function isOurBroker(pid: number, dataDir: string): boolean {
  const cmdline = processCommandLine(pid);
  return isProcessAlive(pid) && cmdline.includes('kafka.Kafka') && cmdline.includes(join(dataDir, 'server.properties'));
}

function readText(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}
