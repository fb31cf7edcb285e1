import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { PipelineError } from '../../common/errors.ts';
import { logTail } from '../../common/logTail.ts';
import { isProcessAlive } from '../../common/processes.ts';

const REGISTRY_MAIN = resolve(import.meta.dirname, '../../registry/main.ts');
// tsx's loader by absolute URL, so the child finds it whatever its working directory.
const TSX_LOADER = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;

export interface RegistryProcess {
  url: string;
  pid: number;
  logFile: string;
}

/**
 * Starts the schema registry as its own detached process (it outlives this CLI call) and
 * waits for the ready file it writes once it has replayed its topic and listens.
 */
export async function startRegistryProcess(options: { brokers: string[]; topic: string; dir: string; timeoutMs?: number }): Promise<RegistryProcess> {
  mkdirSync(options.dir, { recursive: true });
  const readyFile = join(options.dir, 'registry.ready.json');
  const logFile = join(options.dir, 'registry.log');
  rmSync(readyFile, { force: true });
  const log = openSync(logFile, 'a');
  const child = spawn(process.execPath, ['--import', TSX_LOADER, REGISTRY_MAIN], {
    detached: true,
    stdio: ['ignore', log, log],
    env: { ...process.env, KAFKA_BROKERS: options.brokers.join(','), REGISTRY_TOPIC: options.topic, REGISTRY_READY_FILE: readyFile },
  });
  child.unref();
  closeSync(log);
  const pid = child.pid;
  if (pid === undefined) throw new PipelineError('STACK_START_FAILED', 'the schema registry process could not be spawned');

  const deadline = Date.now() + (options.timeoutMs ?? 60_000);
  while (Date.now() < deadline) {
    if (existsSync(readyFile)) {
      const ready = JSON.parse(readFileSync(readyFile, 'utf8')) as { url: string };
      return { url: ready.url, pid, logFile };
    }
    if (!isProcessAlive(pid)) break;
    await sleep(100);
  }
  if (isProcessAlive(pid)) process.kill(pid, 'SIGKILL');
  throw new PipelineError('STACK_START_FAILED', `the schema registry did not become ready; last lines of ${logFile}:\n${logTail(logFile, 20)}`);
}
