import { setTimeout as sleep } from 'node:timers/promises';
import { errorMessage } from './errors.ts';
import type { Logger } from './logger.ts';

/**
 * Keeps one piece of Kafka work alive: start it, wait until it reports that it can go on no
 * longer (a crashed consumer, a failed or fenced transaction, a stall), close everything it
 * held, and start a fresh one after a backoff, for as long as the process runs. This is what
 * Kafka Streams does for a migrated task: new consumer, new producers, state restored by the
 * new incarnation. kafkajs' own restart is never relied on: it gives up on errors it does not
 * know as retriable and leaves the consumer dead with the process still up.
 *
 * The first start is the caller's: if it throws, `start()` throws (a service that cannot
 * start at all should exit and say why). Every later failure is recovered here.
 */
export interface Incarnation {
  /** Releases everything this incarnation holds; called once, before the next one starts. */
  stop(): Promise<void>;
}

export type SupervisorState = 'starting' | 'running' | 'restarting' | 'stopped';

export interface SupervisorStatus {
  state: SupervisorState;
  /** When the current state began (ms since epoch). */
  since: number;
  restarts: number;
  lastError?: string;
}

export interface SupervisorOptions {
  name: string;
  logger: Logger;
  /** Starts one incarnation; it calls `fail` when it cannot go on (later calls are ignored). */
  start(fail: (err: unknown) => void): Promise<Incarnation>;
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  /** An incarnation that does not release its resources within this time is abandoned. */
  stopTimeoutMs?: number;
  /** Called on every state change (for metrics and logs). */
  onState?(status: SupervisorStatus): void;
}

const STOP = Symbol('stop');

export class Supervisor {
  private status: SupervisorStatus = { state: 'starting', since: Date.now(), restarts: 0 };
  private stopRequested = false;
  private wakeOnStop: () => void = () => {};
  private readonly stopSignal = new Promise<typeof STOP>((resolve) => (this.wakeOnStop = () => resolve(STOP)));
  private failCurrent: ((err: unknown) => void) | undefined;
  private running: Promise<void> | undefined;

  constructor(private readonly options: SupervisorOptions) {}

  get current(): SupervisorStatus {
    return { ...this.status };
  }

  /** Starts the first incarnation; resolves once it runs, throws if it cannot start. */
  async start(): Promise<void> {
    let first!: { resolve: () => void; reject: (err: unknown) => void };
    const started = new Promise<void>((resolve, reject) => (first = { resolve, reject }));
    this.running = this.supervise(first);
    await started;
  }

  /** Ends the current incarnation as failed, so that a fresh one replaces it (e.g. after a stall). */
  restart(reason: string): void {
    this.failCurrent?.(new Error(reason));
  }

  async stop(): Promise<void> {
    this.stopRequested = true;
    this.wakeOnStop();
    await this.running;
  }

  private async supervise(first: { resolve: () => void; reject: (err: unknown) => void }): Promise<void> {
    const log = this.options.logger;
    let backoff = this.options.initialBackoffMs ?? 500;
    let isFirst = true;
    while (!this.stopRequested) {
      let reportFailure!: (err: unknown) => void;
      const failed = new Promise<unknown>((resolve) => (reportFailure = resolve));
      let settled = false;
      const fail = (err: unknown) => {
        if (settled) return;
        settled = true;
        reportFailure(err);
      };
      this.failCurrent = fail;
      let incarnation: Incarnation | undefined;
      try {
        incarnation = await this.options.start(fail);
      } catch (err) {
        if (isFirst) {
          this.setState('stopped', err);
          first.reject(err);
          return;
        }
        fail(err);
      }
      const startedAt = Date.now();
      if (incarnation && !settled) this.setState('running');
      if (isFirst) first.resolve();
      isFirst = false;
      const outcome = await Promise.race([failed, this.stopSignal]);
      if (incarnation) await this.release(incarnation);
      if (outcome === STOP) break;
      this.status.restarts++;
      this.setState('restarting', outcome);
      // A long healthy run earns a quick restart; repeated failures back off up to the cap.
      if (Date.now() - startedAt > 60_000) backoff = this.options.initialBackoffMs ?? 500;
      const delay = Math.round(backoff * (0.8 + Math.random() * 0.4));
      log.error({ err: outcome, restarts: this.status.restarts, retryInMs: delay }, `${this.options.name} failed; starting a fresh one`);
      await Promise.race([sleep(delay), this.stopSignal]);
      backoff = Math.min(backoff * 2, this.options.maxBackoffMs ?? 15_000);
    }
    this.failCurrent = undefined;
    this.setState('stopped');
  }

  private async release(incarnation: Incarnation): Promise<void> {
    const timeoutMs = this.options.stopTimeoutMs ?? 15_000;
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        incarnation.stop(),
        new Promise<void>((_, reject) => (timer = setTimeout(() => reject(new Error(`did not stop within ${timeoutMs} ms; abandoned`)), timeoutMs))),
      ]);
    } catch (err) {
      this.options.logger.warn({ err }, `${this.options.name}: releasing a failed incarnation did not finish cleanly`);
    } finally {
      clearTimeout(timer);
    }
  }

  private setState(state: SupervisorState, err?: unknown): void {
    this.status = { state, since: Date.now(), restarts: this.status.restarts, ...(err === undefined ? (this.status.lastError ? { lastError: this.status.lastError } : {}) : { lastError: errorMessage(err) }) };
    this.options.onState?.(this.current);
  }
}
