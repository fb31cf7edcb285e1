import { spawn, type ChildProcess } from 'node:child_process';
import { createRequire } from 'node:module';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const ROOT = resolve(import.meta.dirname, '../..');
const TSX = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;

export interface ChildService {
  process: ChildProcess;
  /** Everything the child wrote to stderr (its pino log). */
  log: () => string;
  /** Resolves when the child has logged `<name> started`. */
  started: Promise<void>;
  exited: Promise<number | null>;
}

/** Runs a service's main module as a real child process, as production would. */
export function spawnService(mainModule: string, env: Record<string, string>): ChildService {
  const child = spawn(process.execPath, ['--import', TSX, resolve(ROOT, mainModule)], {
    cwd: ROOT,
    env: { ...process.env, LOG_LEVEL: 'info', METRICS_PORT: '0', ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let output = '';
  const started = new Promise<void>((ok, fail) => {
    child.stderr!.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      if (/"msg":"\w+ started"/.test(output)) ok();
    });
    child.once('exit', (code) => fail(new Error(`service exited with ${code} before it started:\n${output.slice(-3_000)}`)));
  });
  started.catch(() => {});
  const exited = new Promise<number | null>((done) => child.once('exit', (code) => done(code)));
  return { process: child, log: () => output, started, exited };
}

export { waitUntilSettled } from '../../services/common/groupProgress.ts';
