import { spawn } from 'node:child_process';
import { appendFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { crashStackComponent } from '../services/cli/stack/stackFaults.ts';
import { loadConfig, type Config } from '../services/common/config.ts';
import { isProcessAlive } from '../services/common/processes.ts';
import { readStackState, type StackState } from '../services/common/stackState.ts';

/**
 * The drill's handle on the project's own local stack in a stack directory of its own:
 * `expctl stack up` / `down` run as child processes (exactly what an operator types; it also
 * keeps chDB out of the drill's process); faults are `crashStackComponent` (SIGKILL of the
 * broker or registry recorded in stack.json, waiting until it has really exited). Recovering
 * is `stack up` again: it restarts what died on the ports stack.json recorded, which running
 * services still dial.
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

  /** SIGKILLs the broker's JVM (`crashStackComponent`); resolves with its pid once it has really exited. */
  async killBroker(): Promise<number> {
    return (await crashStackComponent(this.config(), 'kafka')).pid;
  }

  async killRegistry(): Promise<number> {
    return (await crashStackComponent(this.config(), 'schema-registry')).pid;
  }

  /** Pids still alive that the stack started (for the final clean-up check). */
  livePids(): number[] {
    const s = readStackState(this.stackDir);
    return s ? [s.kafka.pid, s.registry.pid].filter(isProcessAlive) : [];
  }

  /** The configuration `expctl` sees in the child processes: this stack directory, nothing foreign. */
  private config(): Config {
    return loadConfig({ env: this.env(), cwd: ROOT });
  }

  private env(): NodeJS.ProcessEnv {
    return isolatedEnv({ EXP_STACK_DIR: this.stackDir, EXP_CACHE_DIR: this.cacheDir, CHDB_PATH: join(this.stackDir, 'chdb'), LOG_LEVEL: 'warn' });
  }

  private expctl(args: string[], timeoutMs: number): Promise<void> {
    return new Promise((done, fail) => {
      const child = spawn(process.execPath, [EXPCTL, ...args], {
        cwd: ROOT,
        env: this.env(),
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

function tail(text: string, lines = 15): string {
  return text.trimEnd().split('\n').slice(-lines).join('\n');
}
