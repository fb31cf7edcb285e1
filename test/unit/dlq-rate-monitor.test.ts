import { describe, expect, it } from 'vitest';
import { DlqRateMonitor } from '../../services/ingest/dlqRateMonitor.ts';

const MINUTE = 60_000;

describe('DLQ rate spikes', () => {
  it('signals once when a minute dead-letters far more than the minutes before', () => {
    const monitor = new DlqRateMonitor();
    for (let m = 0; m < 5; m++) expect(monitor.observe(m * MINUTE, 1_000, 2)).toBeUndefined();
    expect(monitor.observe(5 * MINUTE, 500, 10)).toBeUndefined(); // fewer than 20 dead letters so far
    const spike = monitor.observe(5 * MINUTE + 1_000, 500, 40);
    expect(spike).toMatchObject({ minute: 5 * MINUTE, deadLetters: 50, records: 1_000, share: 0.05, trailingShare: 0.002 });
    expect(monitor.observe(5 * MINUTE + 2_000, 100, 50)).toBeUndefined(); // once per minute
  });

  it('stays quiet when the DLQ share is steady, even if high', () => {
    const monitor = new DlqRateMonitor();
    for (let m = 0; m < 8; m++) expect(monitor.observe(m * MINUTE, 1_000, 100)).toBeUndefined();
  });
});
