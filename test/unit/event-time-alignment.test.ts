import { describe, expect, it } from 'vitest';
import { EventTimeAlignment } from '../../services/ingest/eventTimeAlignment.ts';

const S = 1_000;
const times = (from: number, to: number, step = 10 * S) => Array.from({ length: Math.floor((to - from) / step) + 1 }, (_, i) => from + i * step);

describe('event-time alignment of the raw inputs (ingest)', () => {
  it('takes a batch only up to the slack ahead of the earliest waiting head of the other inputs, and the other input catches up', () => {
    const align = new EventTimeAlignment({ slackMs: 30 * S, maxWaitMs: 2 * S });
    align.noteLag('metrics:0', 100);
    align.noteLag('exposures:0', 100);
    // The metrics' backlog comes first; the exposures' head is not known yet: wait.
    const metrics = times(0, 600 * S);
    expect(align.take('metrics:0', metrics, 0)).toBe(0);
    // The exposures' backlog starts where the metrics' does: up to 30 s past the metrics' head.
    const exposures = times(0, 600 * S, 20 * S);
    expect(align.take('exposures:0', exposures, 10)).toBe(2); // 0 s and 20 s
    // Now the metrics may run up to 30 s past the exposures' next record (40 s).
    expect(align.take('metrics:0', metrics, 20)).toBe(8); // 0 ... 70 s
    expect(align.take('exposures:0', exposures.slice(2), 30)).toBe(4); // 40 ... 100 s: up to the metrics' next (80 s) + 30 s
  });

  it('does not wait for an input with nothing waiting, nor beyond maxWaitMs for one that is', () => {
    const align = new EventTimeAlignment({ slackMs: 30 * S, maxWaitMs: 2 * S });
    align.noteLag('metrics:0', 10);
    align.noteLag('exposures:0', 0);
    expect(align.take('metrics:0', times(0, 600 * S), 0)).toBe(61);
    align.noteLag('exposures:0', 5);
    align.noteLag('exposures:1', 5); // head unknown: holds the others back, for a bounded time
    expect(align.take('metrics:0', times(700 * S, 800 * S), 1_000)).toBe(0);
    expect(align.take('metrics:0', times(700 * S, 800 * S), 2_500)).toBe(0);
    expect(align.take('metrics:0', times(700 * S, 800 * S), 3_000)).toBe(11);
    // A partition that goes away holds nothing back.
    align.noteLag('exposures:0', undefined);
    align.noteLag('exposures:1', undefined);
    expect(align.take('metrics:0', times(900 * S, 1_000 * S), 3_100)).toBe(11);
  });

  it('lets unreadable records (no event time) go with their neighbours', () => {
    const align = new EventTimeAlignment({ slackMs: 0, maxWaitMs: 1_000 });
    align.noteLag('a:0', 3);
    align.noteLag('b:0', 3);
    expect(align.take('b:0', [50 * S], 0)).toBe(0);
    expect(align.take('a:0', [undefined, 10 * S, undefined, 60 * S], 1)).toBe(3);
  });
});

describe('event-time alignment at start', () => {
  it('takes the assigned partitions as waiting until their lag is known, so a backlog starts in step', () => {
    const align = new EventTimeAlignment({ slackMs: 30 * S, maxWaitMs: 2 * S });
    align.assigned(['metrics:0', 'exposures:0']);
    expect(align.take('metrics:0', times(0, 600 * S), 0)).toBe(0);
    expect(align.take('exposures:0', times(0, 600 * S), 1)).toBe(4); // 0 ... 30 s
    align.assigned(['metrics:0']); // exposures:0 went to another instance
    expect(align.take('metrics:0', times(0, 600 * S), 2)).toBe(61);
  });
});
