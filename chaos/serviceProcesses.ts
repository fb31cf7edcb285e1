import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, readFileSync, type WriteStream } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { join, resolve } from 'node:path';
import { serviceBundlePath } from '../infra/build/serviceBundles.ts';
import type { ServiceName } from './drillOptions.ts';
import { isolatedEnv } from './stackControl.ts';

/**
 * Each pipeline service as its own child process (`node dist/services/<name>.mjs`, its bundle,
 * built when the drill starts: infra/build/serviceBundles.ts), as deployed. The drill only ever signals them: SIGSTOP/SIGCONT for a pause, SIGKILL and one
 * deliberate restart for a kill, SIGTERM at the end. Any other exit is the service's own doing
 * and is recorded as a failure with the last lines of its log.
 */
const ROOT = resolve(import.meta.dirname, '..');
const LOG_TAIL_LINES = 40;

export interface UnexpectedExit {
  service: ServiceName;
  pid: number;
  at: number;
  code: number | null;
  signal: NodeJS.Signals | null;
  /** The last error-level lines of its log, or its last lines. */
  lastLines: string[];
}

export class ServiceProcess {
  private child: ChildProcess | undefined;
  private log: WriteStream;
  private tail: string[] = [];
  private partial = '';
  private logClosed: Promise<void> | undefined;
  private expectingExit = false;
  private exitPromise: Promise<{ code: number | null; signal: NodeJS.Signals | null }> = Promise.resolve({ code: null, signal: null });
  /** Times the drill started it (1 at the start, +1 for the deliberate restart after a kill). */
  starts = 0;
  readonly unexpectedExits: UnexpectedExit[] = [];
  readonly logFile: string;

  constructor(
    readonly name: ServiceName,
    readonly metricsPort: number,
    private readonly env: Record<string, string>,
    logDir: string,
    private readonly onUnexpectedExit: (exit: UnexpectedExit) => void,
  ) {
    this.logFile = join(logDir, `${name}.log`);
    this.log = createWriteStream(this.logFile, { flags: 'a' });
    this.log.on('error', () => {}); // a full disk must not take the drill down with it
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Spawns the service and resolves once it logged `<name> started`; rejects if it exits first. */
  start(timeoutMs = 90_000): Promise<void> {
    if (this.running) throw new Error(`${this.name} is already running (pid ${this.pid})`);
    this.starts++;
    this.expectingExit = false;
    const child = spawn(process.execPath, [serviceBundlePath(this.name)], {
      cwd: ROOT,
      env: isolatedEnv({ KAFKAJS_NO_PARTITIONER_WARNING: '1', LOG_LEVEL: 'info', METRICS_PORT: String(this.metricsPort), ...this.env }),
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    this.child = child;
    this.writeLog(`\n===== chaos drill: started ${this.name} (pid ${child.pid}) at ${new Date().toISOString()} =====\n`);
    let started = false;
    const ready = new Promise<void>((ok, fail) => {
      const timer = setTimeout(() => fail(new Error(`${this.name} did not log '${this.name} started' within ${timeoutMs / 1000} s`)), timeoutMs);
      child.stderr!.on('data', (chunk: Buffer) => {
        this.writeLog(chunk);
        const text = this.partial + chunk.toString();
        const lines = text.split('\n');
        this.partial = lines.pop() ?? '';
        for (const line of lines) {
          this.tail.push(line);
          if (!started && line.includes(`"msg":"${this.name} started"`)) {
            started = true;
            clearTimeout(timer);
            ok();
          }
        }
        if (this.tail.length > 4 * LOG_TAIL_LINES) this.tail = this.tail.slice(-2 * LOG_TAIL_LINES);
      });
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        if (!started) fail(new Error(`${this.name} exited (${signal ?? `code ${code}`}) before it started:\n${this.lastLines().join('\n')}`));
      });
    });
    this.exitPromise = new Promise((done) =>
      child.once('exit', (code, signal) => {
        this.writeLog(`===== chaos drill: ${this.name} (pid ${child.pid}) exited: ${signal ?? `code ${code}`} at ${new Date().toISOString()}${this.expectingExit ? '' : ' (NOT caused by the drill)'} =====\n`);
        if (!this.expectingExit) {
          const exit: UnexpectedExit = { service: this.name, pid: child.pid!, at: Date.now(), code, signal, lastLines: this.lastLines() };
          this.unexpectedExits.push(exit);
          this.onUnexpectedExit(exit);
        }
        done({ code, signal });
      }),
    );
    return ready;
  }

  pause(): void {
    this.signal('SIGSTOP');
  }

  resume(): void {
    this.signal('SIGCONT');
  }

  /** SIGKILL (the drill's fault); resolves once the process is gone. */
  async kill(): Promise<void> {
    this.expectingExit = true;
    this.signal('SIGKILL');
    await this.exitPromise;
  }

  /** SIGTERM and wait (the service commits its batch in hand); SIGKILL after `timeoutMs`. */
  async stop(timeoutMs = 40_000): Promise<{ code: number | null; signal: NodeJS.Signals | null; forced: boolean }> {
    if (!this.running) return { ...(await this.exitPromise), forced: false };
    this.expectingExit = true;
    this.signal('SIGCONT'); // a paused process cannot handle SIGTERM
    this.signal('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const forced = await Promise.race([
      this.exitPromise.then(() => false),
      new Promise<boolean>((r) => (timer = setTimeout(() => r(true), timeoutMs))),
    ]);
    clearTimeout(timer);
    if (forced) this.signal('SIGKILL');
    return { ...(await this.exitPromise), forced };
  }

  /** GET /healthz on its metrics port: ok on 200 within two seconds; otherwise the problems it lists. */
  async health(): Promise<{ ok: boolean; problems: string[] }> {
    if (!this.running) return { ok: false, problems: ['not running'] };
    try {
      const response = await fetch(`http://127.0.0.1:${this.metricsPort}/healthz`, { signal: AbortSignal.timeout(2_000) });
      if (response.status === 200) return { ok: true, problems: [] };
      const body = (await response.json().catch(() => ({}))) as { problems?: unknown[] };
      const problems = Array.isArray(body.problems) ? body.problems.map((p) => (typeof p === 'string' ? p : JSON.stringify(p))) : [];
      return { ok: false, problems: problems.length > 0 ? problems : [`HTTP ${response.status}`] };
    } catch (err) {
      return { ok: false, problems: [`/healthz did not answer: ${(err as Error).message}`] };
    }
  }

  /**
   * Resolves once a line of its log (since the drill began, across restarts) matches `pattern`;
   * rejects at the deadline with what it was waiting for.
   */
  async waitForLog(pattern: RegExp, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const text = existsSync(this.logFile) ? readFileSync(this.logFile, 'utf8') : '';
      if (text.split('\n').some((line) => pattern.test(line))) return;
      if (Date.now() > deadline) throw new Error(`${this.name} did not log ${pattern} within ${timeoutMs / 1000} s`);
      await sleep(200);
    }
  }

  /** The last error or fatal lines of its log (pino level ≥ 50), else its last lines. */
  lastLines(count = 8): string[] {
    const lines = [...this.tail, ...(this.partial ? [this.partial] : [])];
    const errors = lines.filter((l) => /"level":(50|60)/.test(l));
    return (errors.length > 0 ? errors : lines).slice(-count).map((l) => summarizeLogLine(l));
  }

  /** Flushes and closes its log file (once; later output of the process is dropped). */
  closeLog(): Promise<void> {
    this.logClosed ??= new Promise<void>((done) => this.log.end(done));
    return this.logClosed;
  }

  private writeLog(chunk: string | Buffer): void {
    if (!this.logClosed) this.log.write(chunk);
  }

  private signal(name: NodeJS.Signals): void {
    try {
      this.child?.kill(name);
    } catch {
      // already gone
    }
  }
}

/** A pino JSON line shortened to what a person needs: level, message, error message. */
export function summarizeLogLine(line: string): string {
  try {
    const entry = JSON.parse(line) as { level?: number; msg?: string; err?: { message?: string; type?: string }; error?: string; module?: string; namespace?: string };
    const level = ({ 10: 'trace', 20: 'debug', 30: 'info', 40: 'warn', 50: 'error', 60: 'fatal' } as Record<number, string>)[entry.level ?? 30] ?? String(entry.level);
    const where = entry.module ?? entry.namespace;
    const err = entry.err ? `: ${entry.err.type ?? 'Error'}: ${entry.err.message ?? ''}` : entry.error ? `: ${entry.error}` : '';
    return `${level}${where ? ` [${where}]` : ''} ${entry.msg ?? ''}${err}`.slice(0, 400);
  } catch {
    return line.slice(0, 400);
  }
}
