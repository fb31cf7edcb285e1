import { RateSpikeMonitor } from '../common/rateSpikeMonitor.ts';

/**
 * Notices a dead-letter spike: raw records per wall-clock minute, and the share of them that
 * went to the DLQ (services/common/rateSpikeMonitor.ts has the rule). Ingest is where both
 * counts are known exactly, so the check lives here; the signal goes to exp.anomalies like
 * the guard's.
 */
export interface DlqSpike {
  minute: number;
  deadLetters: number;
  records: number;
  share: number;
  trailingShare: number;
}

export class DlqRateMonitor {
  private readonly monitor: RateSpikeMonitor;

  constructor(factor?: number, floor?: number, minimum?: number, trailingMinutes?: number) {
    this.monitor = new RateSpikeMonitor(factor, floor, minimum, trailingMinutes);
  }

  /** Adds a batch's counts; returns a spike for the current minute the first time it qualifies. */
  observe(now: number, records: number, deadLetters: number): DlqSpike | undefined {
    const spike = this.monitor.observe(now, records, deadLetters);
    return spike && { minute: spike.minute, deadLetters: spike.flagged, records: spike.records, share: spike.share, trailingShare: spike.trailingShare };
  }
}
