import { describe, expect, it } from 'vitest';
import { DeltaAccumulator, type ExperimentDelta } from '../../services/aggregate/deltaAccumulator.ts';
import { replayPartition } from '../support/partitionReplay.ts';
import { isExposure, type PipelineEvent } from '../../services/common/contracts/pipelineEvent.ts';
import { seededRandom } from '../../services/common/random.ts';
import { accountRawRecords, type IngestOutput, type RawEntry, type SentSummary } from '../../chaos/accounting.ts';
import { drillOptions, parseFaults } from '../../chaos/drillOptions.ts';
import { BROKEN_EXPERIMENT, BROKEN_SPLIT, HEALTHY_EXPERIMENTS } from '../../chaos/drillSetup.ts';
import { compareTotals, oracleTotals, overlappingDeltas, sumDeltas } from '../../chaos/oracle.ts';
import { checkTables } from '../../chaos/clickhouseCheck.ts';
import { summarizeHealing } from '../../chaos/selfHealing.ts';
import { userSends, type TrafficExperiment } from '../../chaos/trafficPlan.ts';

const DEFINITIONS = [...HEALTHY_EXPERIMENTS, BROKEN_EXPERIMENT];
const TRAFFIC: TrafficExperiment[] = [
  { id: 'chaos-checkout', variants: [{ id: 'control', share: 0.5 }, { id: 'one-page', share: 0.5 }], metrics: ['purchase'], weight: 1 },
  { id: 'chaos-search', variants: ['a', 'b', 'c', 'd'].map((id) => ({ id, share: 0.25 })), metrics: ['clicks'], weight: 1 },
  { id: BROKEN_EXPERIMENT.id, variants: Object.entries(BROKEN_SPLIT).map(([id, share]) => ({ id, share })), metrics: ['purchase'], weight: 2 },
];

function drillEvents(users: number, seed: number): PipelineEvent[] {
  const random = seededRandom(seed);
  const events: PipelineEvent[] = [];
  for (let n = 0; n < users; n++) {
    for (const s of userSends(n, 1_800_000_000_000 + n * 10, random, TRAFFIC)) if (s.via === 'event' && s.expected === 'valid') events.push(s.event);
  }
  return events;
}

describe('chaos drill: the oracle', () => {
  it('equals the aggregator on drill traffic however ingest interleaves the two raw topics', () => {
    const events = drillEvents(3_000, 5);
    const expected = oracleTotals(DEFINITIONS, events);
    expect(expected.outsideEnvelope).toEqual([]);
    const published = new Map(DEFINITIONS.map((definition) => [definition.id, { experimentId: definition.id, version: 1, appliedAt: 0, definition }]));
    for (const seed of [1, 2, 3]) {
      // The two raw topics reach the aggregator in any interleaving, one lagging by up to 2,000 records.
      const random = seededRandom(seed);
      const exposures = events.filter(isExposure);
      const metrics = events.filter((e) => !isExposure(e));
      const lag = Math.floor(random() * 2_000);
      const arrival: PipelineEvent[] = [];
      let x = 0;
      let m = 0;
      while (x < exposures.length || m < metrics.length) {
        const takeMetric = x >= exposures.length || (m < metrics.length && (seed % 2 === 0 ? m < x + lag : x >= m + lag || random() < 0.5));
        arrival.push(takeMetric ? metrics[m++]! : exposures[x++]!);
      }
      const replay = replayPartition(arrival, [...published.values()], { seed, maxBatch: 500 });
      const deltas = replay.deltas;
      const early = replay.outcomes.get('metric_counted_early') ?? 0;
      expect(replay.outcomes.get('late') ?? 0).toBe(0);
      expect(compareTotals(expected.totals, sumDeltas(deltas))).toEqual([]);
      if (seed === 2) expect(early).toBeGreaterThan(1_000); // metrics ran ahead of their exposures
    }
  });

  it('names the differences and the deltas that cover the same input twice', () => {
    const events = drillEvents(200, 9);
    const expected = oracleTotals(DEFINITIONS, events).totals;
    const doubled = oracleTotals(DEFINITIONS, [...events, ...events.filter((e) => !isExposure(e)).slice(0, 5)]).totals;
    expect(compareTotals(expected, expected)).toEqual([]);
    expect(compareTotals(expected, doubled).length).toBeGreaterThan(0);
    const delta = (firstOffset: number, lastOffset: number) => ({ experimentId: 'e', definitionVersion: 1, variants: [], buckets: [], sourcePartition: 0, firstOffset, lastOffset });
    expect(overlappingDeltas([delta(0, 9), delta(10, 19)])).toEqual([]);
    expect(overlappingDeltas([delta(0, 9), delta(5, 19)])).toEqual(['e@exp.events:0: offsets 0-9 and 5-19']);
  });
});

describe('chaos drill: raw in = valid + DLQ', () => {
  const sent: SentSummary[] = [
    { id: 'x-1', expected: 'valid', acked: true, attempts: 1 },
    { id: 'x-2', expected: 'valid', acked: true, attempts: 2 },
    { id: 'bad-bytes-3', expected: 'BAD_MAGIC_BYTE', acked: true, attempts: 1 },
    { id: 'x-4', expected: 'valid', acked: true, attempts: 1 },
    { id: 'x-5', expected: 'valid', acked: false, attempts: 3 },
  ];
  const raw: RawEntry[] = [
    { coordinates: 'raw:0:0', id: 'x-1' },
    { coordinates: 'raw:0:1', id: 'x-2' },
    { coordinates: 'raw:0:2', id: 'x-2' },
    { coordinates: 'raw:0:3', id: 'bad-bytes-3' },
    { coordinates: 'raw:0:4', id: 'x-4' },
  ];

  it('accepts a complete, exact run, counting a copy the generator itself re-sent apart', () => {
    const events: IngestOutput[] = [
      { source: 'raw:0:0', at: 'ev:0:0', eventId: 'x-1' },
      { source: 'raw:0:1', at: 'ev:0:1', eventId: 'x-2' },
      { source: 'raw:0:2', at: 'ev:0:2', eventId: 'x-2' },
      { source: 'raw:0:4', at: 'ev:0:3', eventId: 'x-4' },
    ];
    const dlq: IngestOutput[] = [{ source: 'raw:0:3', at: 'dlq:0:0', reason: 'BAD_MAGIC_BYTE' }];
    const r = accountRawRecords(sent, raw, events, dlq);
    expect({ rawIn: r.rawIn, valid: r.valid, dlq: r.deadLettered, copies: r.rawCopiesFromRetries, unacked: r.unacknowledged }).toEqual({ rawIn: 5, valid: 4, dlq: 1, copies: 1, unacked: 1 });
    expect([r.ackedNotOnRawTopic, r.rawNotIngested, r.orphans, r.contentMismatches, r.rawCopiesUnexplained, Object.keys(r.misrouted), r.ingestedTwice]).toEqual([[], [], [], [], [], [], 0]);
  });

  it('finds lost, doubled, orphaned, altered and misrouted records', () => {
    const events: IngestOutput[] = [
      { source: 'raw:0:0', at: 'ev:0:0', eventId: 'x-1' },
      { source: 'raw:0:0', at: 'ev:0:1', eventId: 'x-1' },
      { source: 'raw:0:2', at: 'ev:0:2', eventId: 'x-9' },
      { source: 'raw:0:99', at: 'ev:0:3', eventId: 'x-99' },
    ];
    const dlq: IngestOutput[] = [
      { source: 'raw:0:3', at: 'dlq:0:0', reason: 'BAD_MAGIC_BYTE' },
      { source: 'raw:0:4', at: 'dlq:0:1', reason: 'UNKNOWN_EXPERIMENT' },
    ];
    const r = accountRawRecords(sent, raw, events, dlq);
    expect(r.rawNotIngested).toEqual(['raw:0:1 (x-2)']);
    expect(r.ingestedTwice).toBe(1);
    expect(r.orphans).toEqual(['ev:0:3 names raw:0:99']);
    expect(r.contentMismatches).toHaveLength(1);
    expect(r.misrouted).toEqual({ 'valid -> UNKNOWN_EXPERIMENT': 1 });
    const lostAtBroker = accountRawRecords(sent, raw.filter((e) => e.id !== 'x-4'), events, dlq);
    expect(lostAtBroker.ackedNotOnRawTopic).toEqual(['x-4']);
    const doubledAtBroker = accountRawRecords(sent, [...raw, { coordinates: 'raw:0:5', id: 'x-1' }], events, dlq);
    expect(doubledAtBroker.rawCopiesUnexplained).toHaveLength(1);
  });
});

describe('chaos drill: options', () => {
  it('has a quick form with every fault kind and validates its flags', () => {
    const quick = drillOptions({ quick: true });
    expect(new Set(quick.faults.map((f) => f.kind))).toEqual(new Set(['broker-kill', 'registry-kill', 'service-pause', 'service-kill']));
    expect(drillOptions({}).faults.length).toBeGreaterThan(quick.faults.length);
    expect(drillOptions({ seed: '7', rate: '100' })).toMatchObject({ seed: 7, rate: 100 });
    expect(() => drillOptions({ rate: 'fast' })).toThrow('--rate must be a whole number');
    expect(() => drillOptions({ rate: '5' })).toThrow('--rate must be at least 20');
    expect(() => parseFaults('service-pause')).toThrow("service-pause needs a service");
    expect(() => parseFaults('service-kill:kafka')).toThrow('the service must be one of');
    expect(() => parseFaults('broker-kill:ingest')).toThrow('takes no service');
    expect(() => parseFaults('disk-full')).toThrow('the kind must be one of');
    expect(parseFaults('broker-kill, service-kill:sink')).toEqual([{ kind: 'broker-kill' }, { kind: 'service-kill', service: 'sink' }]);
  });
});

describe('chaos drill: self-healing read from the logs', () => {
  it('counts replacements, groups their reasons and spots a loop replaced right after it started', () => {
    const line = (time: number, msg: string, err?: string) => JSON.stringify({ level: err ? 50 : 30, time, msg, ...(err ? { err: { type: 'Error', message: err } } : {}) });
    const log = [
      line(1_000, 'expstream.ingest loop.running'),
      line(30_000, 'expstream.ingest loop failed; starting a fresh one', 'Connection error: read ECONNRESET'),
      line(31_000, 'reader of exp.definitions failed; starting a fresh one', 'Connection error: connect ECONNREFUSED 127.0.0.1:1234'),
      line(50_000, 'expstream.ingest loop.running'),
      line(52_000, 'expstream.ingest loop failed; starting a fresh one', 'no progress for 40 s on exp.metrics.raw[1] (1768 waiting)'),
      line(54_000, 'expstream.ingest loop.running'),
      line(56_000, 'expstream.ingest loop failed; starting a fresh one', 'no progress for 44 s on exp.metrics.raw[1] (1790 waiting)'),
      'not json',
      '===== chaos drill: started ingest =====',
    ].join('\n');
    expect(summarizeHealing(log)).toEqual({
      replacements: 4,
      reasons: {
        'expstream.ingest loop: Connection error: read ECONNRESET': 1,
        'reader of exp.definitions: Connection error: connect ECONNREFUSED N.N.N.N:N': 1,
        'expstream.ingest loop: no progress for N s on exp.metrics.raw[N] (N waiting)': 2,
      },
      replacedRightAfterStart: 2,
    });
  });
});

describe('chaos drill: ClickHouse rows per source record', () => {
  it('counts missing, extra and foreign rows against what each Kafka record must give', async () => {
    const grouped = [
      { t: 'exp.events', p: 0, o: '0', n: '1' },
      { t: 'exp.events', p: 0, o: '1', n: '2' }, // stored twice
      { t: 'exp.events', p: 1, o: '7', n: '1' }, // not a committed record of the topic
      { t: 'exp.dlq', p: 0, o: '3', n: '1' }, // from another topic
    ];
    const client = {
      query: async ({ query }: { query: string }) => ({
        json: async () => (query.includes('uniqExact') ? [{ d: '1' }] : grouped),
      }),
    } as unknown as Parameters<typeof checkTables>[0];
    const [check] = await checkTables(client, [{ table: 'exposures', topic: 'exp.events', rowsPerRecord: new Map([['0:0', 1], ['0:1', 1], ['0:2', 1]]), lineage: true }]);
    expect(check).toMatchObject({ table: 'exposures', expectedRows: 3, rows: 5, missingRows: 1, extraRows: 3, lineageDuplicates: 1 });
  });
});
