import { spawn } from 'node:child_process';
import { appendFileSync, readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { join, resolve } from 'node:path';
import { isProcessAlive } from '../services/common/processes.ts';
import { readStackState, type StackState } from '../services/common/stackState.ts';

/**
 * The drill's handle on the project's own local stack in a stack directory of its own:
 * `expctl stack up` / `down` run as child processes (exactly what an operator types; it also
 * keeps chDB out of the drill's process), and the broker and registry pids come from
 * stack.json. Recovering from a broker or registry SIGKILL is `stack up` again: the stack
 * restarts what died on the ports stack.json recorded, which running services still use.
 */
const ROOT = resolve(import.meta.dirname, '..');
const EXPCTL = resolve(ROOT, 'bin/expctl.js');

/** Endpoint variables that would point services (and the stack) elsewhere: the drill owns its stack. */
export const FOREIGN_ENDPOINT_VARIABLES = ['KAFKA_BROKERS', 'SCHEMA_REGISTRY_URL', 'CLICKHOUSE_URL', 'EXP_TOPIC_PREFIX', 'EXP_CONFIG'];

export function isolatedEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const name of FOREIGN_ENDPOINT_VARIABLES) delete env[name];
  return { ...env, ...extra };
}

export interface StackEndpoints {
  brokers: string[];
  registryUrl: string;
}

export class StackControl {
  constructor(
    readonly stackDir: string,
    private readonly cacheDir: string,
    private readonly logFile: string,
  ) {}

  /** `expctl stack up`: starts whatever is not running; resolves with the state it recorded. */
  async up(timeoutMs = 180_000): Promise<StackState> {
    await this.expctl(['stack', 'up', '--json'], timeoutMs);
    const state = readStackState(this.stackDir);
    if (!state) throw new Error(`expctl stack up succeeded but left no stack.json in ${this.stackDir}`);
    return state;
  }

  async down(timeoutMs = 60_000): Promise<void> {
    await this.expctl(['stack', 'down'], timeoutMs);
  }

  state(): StackState {
    const state = readStackState(this.stackDir);
    if (!state) throw new Error(`no stack.json in ${this.stackDir}`);
    return state;
  }

  endpoints(): StackEndpoints {
    const s = this.state();
    return { brokers: s.kafka.brokers, registryUrl: s.registry.url };
  }

  /** SIGKILLs the broker's JVM; resolves with its pid once it is gone. */
  async killBroker(): Promise<number> {
    return killAndWait(this.state().kafka.pid, 'broker');
  }

  async killRegistry(): Promise<number> {
    return killAndWait(this.state().registry.pid, 'schema registry');
  }

  /** Pids still alive that the stack started (for the final clean-up check). */
  livePids(): number[] {
    const s = readStackState(this.stackDir);
    return s ? [s.kafka.pid, s.registry.pid].filter(isLive) : [];
  }

  private expctl(args: string[], timeoutMs: number): Promise<void> {
    return new Promise((done, fail) => {
      const child = spawn(process.execPath, [EXPCTL, ...args], {
        cwd: ROOT,
        env: isolatedEnv({ EXP_STACK_DIR: this.stackDir, EXP_CACHE_DIR: this.cacheDir, CHDB_PATH: join(this.stackDir, 'chdb'), LOG_LEVEL: 'warn' }),
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let output = '';
      const collect = (chunk: Buffer) => {
        output += chunk.toString();
        appendFileSync(this.logFile, chunk);
      };
      child.stdout.on('data', collect);
      child.stderr.on('data', collect);
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        fail(new Error(`expctl ${args.join(' ')} did not finish within ${timeoutMs / 1000} s; last output:\n${tail(output)}`));
      }, timeoutMs);
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        if (code === 0) done();
        else fail(new Error(`expctl ${args.join(' ')} failed (${signal ?? `exit ${code}`}); last output:\n${tail(output)}`));
      });
    });
  }
}

async function killAndWait(pid: number, what: string): Promise<number> {
  if (!isLive(pid)) throw new Error(`the ${what} (pid ${pid}) was not running when the fault was due`);
  process.kill(pid, 'SIGKILL');
  const deadline = Date.now() + 10_000;
  while (isLive(pid)) {
    if (Date.now() > deadline) throw new Error(`the ${what} (pid ${pid}) survived SIGKILL for 10 s`);
    await sleep(50);
  }
  return pid;
}

/**
 * Alive, by signal 0, and not fully exited: a killed process whose parent has not reaped it
 * yet is gone once its main thread is a zombie and no other thread is left (a SIGKILLed
 * JVM's main thread is a zombie while its other threads still hold its sockets).
 */
function isLive(pid: number): boolean {
  if (!isProcessAlive(pid)) return false;
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const state = /^State:\s+(\S)/m.exec(status)?.[1];
    const threads = Number(/^Threads:\s+(\d+)/m.exec(status)?.[1] ?? '1');
    return !((state === 'Z' || state === 'X') && threads <= 1);
  } catch {
    return false;
  }
}

function tail(text: string, lines = 15): string {
  return text.trimEnd().split('\n').slice(-lines).join('\n');
}
