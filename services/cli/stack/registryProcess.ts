import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { writeFileAtomically } from '../../common/atomicFile.ts';
import { PipelineError } from '../../common/errors.ts';
import { logSize, logTail } from '../../common/logTail.ts';
import { isProcessAlive, processCommandLine, stopProcess } from '../../common/processes.ts';

const REGISTRY_MAIN = resolve(import.meta.dirname, '../../registry/main.ts');
// tsx's loader by absolute URL, so the child finds it whatever its working directory.
const TSX_LOADER = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;
const HOST = '127.0.0.1';

/**
 * The schema registry of the local stack as its own detached process (it outlives the
 * `expctl` call that started it). Files in the stack directory:
 *   registry.json        pid and port, written by this side right after spawning, so a later
 *                        call can find (and stop) a registry even if the call that started
 *                        it died before recording it in stack.json
 *   registry.ready.json  url and pid, written by the registry once it has replayed its
 *                        topic and listens (write-then-rename: never read half-written)
 *   registry.log         its output
 */
export interface RegistryProcess {
  url: string;
  port: number;
  pid: number;
  logFile: string;
}

interface RegistryRecord {
  pid: number;
  port: number;
  startedAt: string;
}

export async function startRegistryProcess(options: { brokers: string[]; topic: string; dir: string; port: number; timeoutMs?: number }): Promise<RegistryProcess> {
  mkdirSync(options.dir, { recursive: true });
  await stopRegistryInDir(options.dir);
  const readyFile = join(options.dir, 'registry.ready.json');
  const logFile = join(options.dir, 'registry.log');
  rmSync(readyFile, { force: true });
  const logStart = logSize(logFile);
  const log = openSync(logFile, 'a');
  const child = spawn(process.execPath, ['--import', TSX_LOADER, REGISTRY_MAIN], {
    detached: true,
    stdio: ['ignore', log, log],
    // Everything the stack decides is set here, so a stray REGISTRY_* in the caller's environment cannot move it.
    env: { ...process.env, KAFKA_BROKERS: options.brokers.join(','), REGISTRY_HOST: HOST, REGISTRY_PORT: String(options.port), REGISTRY_TOPIC: options.topic, REGISTRY_READY_FILE: readyFile },
  });
  child.unref();
  closeSync(log);
  const pid = child.pid;
  if (pid === undefined) throw new PipelineError('STACK_START_FAILED', 'the schema registry process could not be spawned');
  writeFileAtomically(recordPath(options.dir), JSON.stringify({ pid, port: options.port, startedAt: new Date().toISOString() } satisfies RegistryRecord, null, 2));

  const deadline = Date.now() + (options.timeoutMs ?? 60_000);
  while (Date.now() < deadline) {
    const ready = readReadyFile(readyFile);
    if (ready?.pid === pid) return { url: ready.url, port: options.port, pid, logFile };
    if (!isProcessAlive(pid)) break;
    await sleep(100);
  }
  const exited = !isProcessAlive(pid);
  await stopProcess(pid, 2_000);
  rmSync(recordPath(options.dir), { force: true });
  const tail = logTail(logFile, 20, logStart);
  const context = { port: options.port, pid, logFile };
  if (tail.includes('EADDRINUSE')) {
    throw new PipelineError('STACK_PORT_IN_USE', `the schema registry could not listen on ${HOST}:${options.port}: the port is in use by another process; last lines of ${logFile}:\n${tail}`, { context });
  }
  throw new PipelineError('STACK_START_FAILED', `the schema registry ${exited ? 'exited during start-up' : 'did not become ready in time'}; last lines of ${logFile}:\n${tail}`, { context });
}

/** The registry recorded in `dir`, if that pid is still a running schema registry. */
export function registryStatus(dir: string): { running: boolean; pid?: number; port?: number } {
  const record = readRecord(dir);
  if (!record || !isRegistryProcess(record.pid)) return { running: false };
  return { running: true, pid: record.pid, port: record.port };
}

/** Stops the registry recorded in `dir` (SIGTERM, then SIGKILL); true if one was running. */
export async function stopRegistryInDir(dir: string, timeoutMs = 10_000): Promise<boolean> {
  const record = readRecord(dir);
  if (!record) return false;
  const running = isRegistryProcess(record.pid);
  if (running) await stopProcess(record.pid, timeoutMs);
  rmSync(recordPath(dir), { force: true });
  rmSync(join(dir, 'registry.ready.json'), { force: true });
  return running;
}

function recordPath(dir: string): string {
  return join(dir, 'registry.json');
}

function readRecord(dir: string): RegistryRecord | undefined {
  const parsed = readJson(recordPath(dir));
  return parsed && typeof parsed.pid === 'number' && typeof parsed.port === 'number' ? (parsed as unknown as RegistryRecord) : undefined;
}

/** The ready file, or undefined while it is missing or (from an older writer) not yet whole: keep waiting, never crash. */
function readReadyFile(path: string): { url: string; pid: number } | undefined {
  const parsed = readJson(path);
  return parsed && typeof parsed.url === 'string' && typeof parsed.pid === 'number' ? { url: parsed.url, pid: parsed.pid } : undefined;
}

function readJson(path: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(readFileSync(path, 'utf8'));
    return typeof value === 'object' && value !== null ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** A pid file can outlive its process and the pid be reused: check it still runs the registry's main. */
function isRegistryProcess(pid: number): boolean {
  return isProcessAlive(pid) && processCommandLine(pid).includes(REGISTRY_MAIN);
}
