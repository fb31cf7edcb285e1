import { execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { loadConfig, type Config } from '../../services/common/config.ts';
import { isProcessAlive } from '../../services/common/processes.ts';
import type { Progress } from '../../services/cli/progress.ts';

/**
 * Helpers for tests that run their own `expctl stack` in their own EXP_STACK_DIR (not the
 * shared test stack): the real CLI as a child process, the same configuration in-process,
 * and a look at every process that still belongs to a stack directory.
 */
const ROOT = resolve(import.meta.dirname, '../..');
const EXPCTL = join(ROOT, 'bin/expctl.js');
const CACHE = join(ROOT, '.cache');

/** The variables a stack test sets; the shared stack's endpoints are blanked so the CLI uses its own stack. */
function stackEnv(stackDir: string, extra: Record<string, string> = {}): Record<string, string> {
  return { EXP_STACK_DIR: stackDir, EXP_CACHE_DIR: CACHE, LOG_LEVEL: 'warn', KAFKA_BROKERS: '', SCHEMA_REGISTRY_URL: '', CLICKHOUSE_URL: '', ...extra };
}

/** Runs the real CLI as a user would, without blocking this process (its clients keep running meanwhile). */
export function runExpctl(args: string[], stackDir: string, extraEnv: Record<string, string> = {}): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((done) => {
    execFile(process.execPath, [EXPCTL, ...args], { cwd: ROOT, env: { ...process.env, ...stackEnv(stackDir, extraEnv) }, encoding: 'utf8', timeout: 200_000 }, (err, stdout, stderr) => {
      const status = err ? (typeof err.code === 'number' ? err.code : null) : 0;
      done({ status, stdout, stderr });
    });
  });
}

/** The configuration `expctl` would load for this stack directory, for calling stackUp/stackDown in-process. */
export function stackTestConfig(stackDir: string): Config {
  return loadConfig({ env: stackEnv(stackDir), cwd: ROOT });
}

/**
 * A Progress that records its lines instead of printing them; `beforeStep` runs just
 * before a step's work, so a test can change the world at an exact point of `stack up`.
 */
export function recordingProgress(beforeStep: (label: string) => Promise<void> | void = () => {}): Progress & { lines: string[] } {
  const lines: string[] = [];
  return {
    lines,
    info: (message) => lines.push(message),
    async step(label, work) {
      lines.push(label);
      await beforeStep(label);
      return work((message) => lines.push(`  ${message}`));
    },
  };
}

/**
 * Live processes that belong to `stackDir`: its broker names the directory on its command
 * line, its registry in its environment (REGISTRY_READY_FILE). Independent of the stack's
 * own records, so "nothing left running" is checked against the system, not against them.
 */
export function processesOfStack(stackDir: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    const cmdline = readProc(pid, 'cmdline');
    const environ = readProc(pid, 'environ');
    if ((cmdline.includes(stackDir) || environ.includes(stackDir)) && isProcessAlive(pid)) pids.push(pid);
  }
  return pids;
}

function readProc(pid: number, file: string): string {
  try {
    return readFileSync(`/proc/${pid}/${file}`, 'utf8');
  } catch {
    return '';
  }
}
