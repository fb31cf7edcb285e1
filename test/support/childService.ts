import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { createRequire } from 'node:module';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { trackChild } from './processRegistry.ts';
import { waitFor } from './waitFor.ts';

const ROOT = resolve(import.meta.dirname, '../..');
const TSX = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;
const EXPCTL = resolve(ROOT, 'bin/expctl.js');

export interface ChildService {
  process: ChildProcess;
  /** Everything the child wrote to stderr (its pino log) so far. */
  log: () => string;
  /** Resolves when the child has logged `<name> started`. */
  started: Promise<void>;
  /** Resolves with the exit code once the child has exited and its log has been read to the end. */
  exited: Promise<number | null>;
  /** Resolves with the first match of `pattern` in the log, once it appears; fails at the deadline or if the child exits first. */
  waitForLog(pattern: RegExp, timeoutMs?: number): Promise<RegExpExecArray>;
}

/**
 * Spawns a process for a test and registers it (processRegistry.ts), so that it is stopped
 * after the test whether the test passed or failed. It inherits the worker's environment,
 * and with it the run's EXPSTREAM_TEST_RUN marker, unless `env` replaces it.
 */
export function spawnTracked(command: string, args: string[], options: SpawnOptions & { label: string }): ChildProcess {
  const { label, ...spawnOptions } = options;
  const child = spawn(command, args, { cwd: ROOT, ...spawnOptions });
  trackChild(child, label);
  return child;
}

/** Runs a service's main module as a real child process, as production would. */
export function spawnService(mainModule: string, env: Record<string, string>): ChildService {
  const child = spawnTracked(process.execPath, ['--import', TSX, resolve(ROOT, mainModule)], {
    label: `${mainModule} ${env.EXP_INSTANCE_ID ?? ''}`.trim(),
    env: { ...process.env, LOG_LEVEL: 'info', METRICS_PORT: '0', ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let output = '';
  child.stderr!.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  // 'close' comes after 'exit' and after stderr has ended: the log is complete then.
  const exited = new Promise<number | null>((done) => child.once('close', (code) => done(code)));
  const started = new Promise<void>((ok, fail) => {
    child.stderr!.on('data', () => {
      if (/"msg":"\w+ started"/.test(output)) ok();
    });
    void exited.then((code) => fail(new Error(`service ${mainModule} exited with ${code} before it started:\n${output.slice(-3_000)}`)));
  });
  started.catch(() => {});
  const waitForLog = async (pattern: RegExp, timeoutMs = 60_000): Promise<RegExpExecArray> => {
    let match: RegExpExecArray | null = null;
    await waitFor(() => {
      match = pattern.exec(output);
      if (!match && child.exitCode !== null) throw new Error(`${mainModule} exited with ${child.exitCode} before logging ${pattern}:\n${output.slice(-3_000)}`);
      return match !== null;
    }, { timeoutMs, intervalMs: 50, message: () => `${mainModule} did not log ${pattern}; its log ends:\n${output.slice(-3_000)}` });
    return match!;
  };
  return { process: child, log: () => output, started, exited, waitForLog };
}

export interface CliResult {
  /** Exit status; null when the process was killed (see `stderr` for why). */
  status: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs `expctl` as a user would, in a registered child process (unlike spawnSync, it does
 * not block the worker, so test timeouts and cleanup hooks still work). A run longer than
 * `timeoutMs` is killed and reported in `stderr` with status null.
 */
export function runExpctl(args: string[], options: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<CliResult> {
  const timeoutMs = options.timeoutMs ?? 120_000;
  const child = spawnTracked(process.execPath, [EXPCTL, ...args], { label: `expctl ${args.join(' ')}`, env: options.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  return new Promise((done, fail) => {
    const timer = setTimeout(() => {
      stderr += `\n[test] expctl ${args.join(' ')} did not finish within ${timeoutMs} ms: killed`;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.once('error', (err) => (clearTimeout(timer), fail(err)));
    child.once('close', (code) => {
      clearTimeout(timer);
      done({ status: code, stdout, stderr });
    });
  });
}

export { waitUntilCaughtUp } from './groupProgress.ts';
