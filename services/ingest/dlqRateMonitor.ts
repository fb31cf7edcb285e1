/**
 * Notices a dead-letter spike: raw records per wall-clock minute, and the share of them that
 * went to the DLQ. A minute whose DLQ share is at least `factor` times the trailing share
 * (and above `floor`, with at least `minimum` dead letters) is a spike; one signal per minute.
 * Ingest is where both counts are known exactly, so the check lives here; the signal goes to
 * exp.anomalies like the guard's.
 */
export interface DlqSpike {
  minute: number;
  deadLetters: number;
  records: number;
  share: number;
  trailingShare: number;
}

export class DlqRateMonitor {
  private readonly minutes = new Map<number, { records: number; deadLetters: number }>();
  private signalled = new Set<number>();

  constructor(
    private readonly factor = 5,
    private readonly floor = 0.01,
    private readonly minimum = 20,
    private readonly trailingMinutes = 10,
  ) {}

  /** Adds a batch's counts; returns a spike for the current minute the first time it qualifies. */
  observe(now: number, records: number, deadLetters: number): DlqSpike | undefined {
    const minute = Math.floor(now / 60_000) * 60_000;
    const current = this.minutes.get(minute) ?? { records: 0, deadLetters: 0 };
    current.records += records;
    current.deadLetters += deadLetters;
    this.minutes.set(minute, current);
    for (const m of this.minutes.keys()) if (m < minute - this.trailingMinutes * 60_000) this.minutes.delete(m);
    this.signalled = new Set([...this.signalled].filter((m) => m >= minute - this.trailingMinutes * 60_000));
    if (this.signalled.has(minute) || current.deadLetters < this.minimum) return undefined;
    let trailingRecords = 0;
    let trailingDead = 0;
    for (const [m, c] of this.minutes) if (m < minute) (trailingRecords += c.records), (trailingDead += c.deadLetters);
    // No history, no baseline: a pipeline that starts noisy is not a spike.
    if (trailingRecords === 0) return undefined;
    const share = current.deadLetters / current.records;
    const trailingShare = trailingDead / trailingRecords;
    if (share < this.floor || share < this.factor * trailingShare) return undefined;
    this.signalled.add(minute);
    return { minute, deadLetters: current.deadLetters, records: current.records, share, trailingShare };
  }
}
