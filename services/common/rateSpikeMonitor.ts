/**
 * Notices a spike in the share of records that something flags (dead-lettered at ingest, late
 * at the aggregator), per wall-clock minute. A minute whose share is at least `factor` times
 * the trailing share (and above `floor`, with at least `minimum` flagged records) is a spike;
 * one signal per minute. With no trailing records there is no baseline, and no spike: a
 * pipeline that starts noisy is not one.
 */
export interface RateSpike {
  minute: number;
  flagged: number;
  records: number;
  share: number;
  trailingShare: number;
}

export class RateSpikeMonitor {
  private readonly minutes = new Map<number, { records: number; flagged: number }>();
  private signalled = new Set<number>();

  constructor(
    private readonly factor = 5,
    private readonly floor = 0.01,
    private readonly minimum = 20,
    private readonly trailingMinutes = 10,
  ) {}

  /** Adds a batch's counts; returns a spike for the current minute the first time it qualifies. */
  observe(now: number, records: number, flagged: number): RateSpike | undefined {
    const minute = Math.floor(now / 60_000) * 60_000;
    const current = this.minutes.get(minute) ?? { records: 0, flagged: 0 };
    current.records += records;
    current.flagged += flagged;
    this.minutes.set(minute, current);
    for (const m of this.minutes.keys()) if (m < minute - this.trailingMinutes * 60_000) this.minutes.delete(m);
    this.signalled = new Set([...this.signalled].filter((m) => m >= minute - this.trailingMinutes * 60_000));
    if (this.signalled.has(minute) || current.flagged < this.minimum) return undefined;
    let trailingRecords = 0;
    let trailingFlagged = 0;
    for (const [m, c] of this.minutes) if (m < minute) (trailingRecords += c.records), (trailingFlagged += c.flagged);
    if (trailingRecords === 0) return undefined;
    const share = current.flagged / current.records;
    const trailingShare = trailingFlagged / trailingRecords;
    if (share < this.floor || share < this.factor * trailingShare) return undefined;
    this.signalled.add(minute);
    return { minute, flagged: current.flagged, records: current.records, share, trailingShare };
  }
}
