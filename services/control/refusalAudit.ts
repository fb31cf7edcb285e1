import type { LifecycleAction } from '../common/experimentLifecycle.ts';

/**
 * Refused commands (halt, resume and the lifecycle's moves) go into the audit chain without letting anyone flood it:
 * per caller (refusal code, principal or kind of credential, client address) and window, the
 * first refusal is recorded at once and the rest are counted, then recorded as one summary
 * with the count when the window ends (or at the caller's next refusal after it, or when the
 * API stops). Memory is bounded: at most `maxCallers` callers are tracked per window; refusals
 * from callers beyond that share one overflow entry.
 */
export type RefusalCode = 'UNAUTHENTICATED' | 'FORBIDDEN' | 'THROTTLED';

/** Any command the admin API submits for a caller: halt and resume, and the lifecycle's define, start, conclude and archive. */
export type RefusedAction = LifecycleAction;

export interface Refusal {
  code: RefusalCode;
  /** The HTTP status the caller got. */
  status: number;
  /** The principal, or what the caller presented ("a caller with an unknown token"). */
  who: string;
  address: string;
  action: RefusedAction;
  experimentId: string;
}

/** What goes into the audit chain: a refusal note's fields, and how many refusals it stands for. */
export interface RefusalNote {
  code: RefusalCode;
  action: RefusedAction;
  experimentId: string;
  reason: string;
  refusals: number;
}

export interface RefusalAuditOptions {
  windowMs: number;
  /** Records a note in the audit chain; failures are the recorder's to report. */
  record(note: RefusalNote): Promise<void>;
  maxCallers?: number;
  now?: () => number;
}

/** Experiments named one by one in a summary; the rest are counted. */
const EXPERIMENTS_NAMED = 5;
const OVERFLOW = '*';

interface Window {
  first: Refusal;
  startedAt: number;
  /** Refusals after the first, not yet recorded. */
  counted: number;
  firstCountedAt: number;
  lastCountedAt: number;
  actions: Map<RefusedAction, number>;
  experiments: Map<string, number>;
  otherExperiments: number;
  statuses: Set<number>;
}

export class RefusalAudit {
  private readonly windows = new Map<string, Window>();
  private readonly maxCallers: number;
  private readonly now: () => number;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly options: RefusalAuditOptions) {
    this.maxCallers = options.maxCallers ?? 1_000;
    this.now = options.now ?? Date.now;
  }

  /** Summarizes ended windows every quarter window until stopped. */
  start(): void {
    this.timer = setInterval(() => void this.sweep(), Math.max(250, Math.floor(this.options.windowMs / 4)));
    this.timer.unref();
  }

  /** Records the summaries still pending. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    const pending = [...this.windows.values()];
    this.windows.clear();
    await this.recordAll(pending.filter((w) => w.counted > 0).map((w) => summary(w)));
  }

  /** Notes a refusal; resolves once what it records (if anything) has been handed to the recorder. */
  async refuse(refusal: Refusal): Promise<void> {
    const now = this.now();
    const notes: RefusalNote[] = [];
    let key = callerKey(refusal);
    let window = this.windows.get(key);
    if (window && now - window.startedAt >= this.options.windowMs) {
      if (window.counted > 0) notes.push(summary(window));
      this.windows.delete(key);
      window = undefined;
    }
    if (!window && this.windows.size >= this.maxCallers) {
      notes.push(...this.endWindows(now));
      if (this.windows.size >= this.maxCallers) {
        key = OVERFLOW;
        window = this.windows.get(OVERFLOW);
        refusal = { ...refusal, who: 'callers beyond the tracking limit', address: 'many addresses' };
      }
    }
    if (window) {
      window.counted++;
      if (window.counted === 1) window.firstCountedAt = now;
      window.lastCountedAt = now;
      window.actions.set(refusal.action, (window.actions.get(refusal.action) ?? 0) + 1);
      window.statuses.add(refusal.status);
      if (window.experiments.has(refusal.experimentId) || window.experiments.size < EXPERIMENTS_NAMED) window.experiments.set(refusal.experimentId, (window.experiments.get(refusal.experimentId) ?? 0) + 1);
      else window.otherExperiments++;
    } else {
      this.windows.set(key, { first: refusal, startedAt: now, counted: 0, firstCountedAt: now, lastCountedAt: now, actions: new Map(), experiments: new Map(), otherExperiments: 0, statuses: new Set() });
      notes.push({
        code: refusal.code,
        action: refusal.action,
        experimentId: refusal.experimentId,
        reason: `${refusal.action} refused (${refusal.status}) for ${refusal.who} from ${refusal.address}; further refusals of this caller within ${seconds(this.options.windowMs)} are counted in one record`,
        refusals: 1,
      });
    }
    await this.recordAll(notes);
  }

  /** Records the summaries of windows that have ended. */
  async sweep(): Promise<void> {
    await this.recordAll(this.endWindows(this.now()));
  }

  private endWindows(now: number): RefusalNote[] {
    const notes: RefusalNote[] = [];
    for (const [key, window] of this.windows) {
      if (now - window.startedAt < this.options.windowMs) continue;
      if (window.counted > 0) notes.push(summary(window));
      this.windows.delete(key);
    }
    return notes;
  }

  private async recordAll(notes: RefusalNote[]): Promise<void> {
    for (const note of notes) await this.options.record(note);
  }
}

function callerKey(r: Refusal): string {
  return JSON.stringify([r.code, r.who, r.address]);
}

function summary(w: Window): RefusalNote {
  const [topExperiment] = [...w.experiments].sort((a, b) => b[1] - a[1])[0] ?? [w.first.experimentId];
  const actions = [...w.actions].map(([action, n]) => `${action} ×${n}`).join(', ');
  const experiments = [...w.experiments].map(([id, n]) => `${id} ×${n}`).join(', ') + (w.otherExperiments > 0 ? `, ${w.otherExperiments} on other experiments` : '');
  const [mainAction] = [...w.actions].sort((a, b) => b[1] - a[1])[0] ?? [w.first.action];
  return {
    code: w.first.code,
    action: mainAction,
    experimentId: topExperiment,
    reason: `${w.counted} more refusal(s) (${[...w.statuses].join(', ')}) for ${w.first.who} from ${w.first.address} between ${new Date(w.firstCountedAt).toISOString()} and ${new Date(w.lastCountedAt).toISOString()}: ${actions}; on ${experiments}`,
    refusals: w.counted,
  };
}

function seconds(ms: number): string {
  return `${Math.round(ms / 100) / 10} s`;
}
