import type { AggregateBenchResult } from './aggregateBench.ts';
import type { ComparisonResult } from './kafkaStreamsBench.ts';
import type { ScaleOutResult } from './scaleOutBench.ts';

/**
 * bench/results/latest.json: the step-13 figures in one place. The comparison with Kafka
 * Streams from this run; the aggregator's memory and restore per million users from the
 * aggregate bench of this run, or, when it did not run (BENCH_ONLY=kafka-streams), from its
 * last recorded result, with the time it was measured; the scale-out figures likewise from the
 * scale-out bench of this run or its last recorded result.
 */
export interface LatestResults {
  at: string;
  machine: object;
  versions: { node: string; kafkaBroker: string; kafkaStreams: string; avro: string; java: string };
  events: number;
  users: number;
  runs: number;
  pipeline: ComparisonResult['pipeline'];
  pipelineWithSink: ComparisonResult['pipelineWithSink'];
  kafkaStreams: ComparisonResult['kafkaStreams'];
  totalsAgree: ComparisonResult['totals'];
  aggregate: { rssMiBPerMillionUsers: number; restoreSecondsPerMillionUsers: number; users: number; measuredAt: string } | null;
  scaleOut: ScaleOutSection | null;
}

/** The scale-out bench in latest.json: events/s, memory and overhead per number of aggregate instances, the per-core rates and the paper estimate. */
export interface ScaleOutSection {
  measuredAt: string;
  events: number;
  partitions: number;
  /** Per number of aggregate instances (1, 2, 3), in one group on the same copy of exp.events. */
  aggregate: { instances: number; eventsPerSec: number; eventsPerSecIncludingStartup: number; startupSeconds: number; settledSeconds: number; assignments: number; reprocessedRecords: number; peakRssMiB: number[]; loadAverageAtStart: number[] }[];
  totalsIdentical: boolean;
  /** Events a fully busy core handles per second (1 / process CPU seconds per event, start-up excluded). */
  eventsPerBusyCore: { ingest: number; aggregate: number };
  estimate: ScaleOutResult['estimate'];
  note: string;
}

export function scaleOutSection(scaleOut: { at: string; result: ScaleOutResult }): ScaleOutSection {
  const s = scaleOut.result;
  return {
    measuredAt: scaleOut.at,
    events: s.events,
    partitions: s.partitions,
    aggregate: s.aggregate.map(({ instances, eventsPerSec, eventsPerSecIncludingStartup, startupSeconds, settledSeconds, assignments, reprocessedRecords, peakRssMiB, loadAverageAtStart }) => ({ instances, eventsPerSec, eventsPerSecIncludingStartup, startupSeconds, settledSeconds, assignments, reprocessedRecords, peakRssMiB, loadAverageAtStart })),
    totalsIdentical: s.totals.identical,
    eventsPerBusyCore: { ingest: s.ingest.eventsPerBusyCore, aggregate: s.aggregate[0]?.eventsPerBusyCore ?? 0 },
    estimate: s.estimate,
    note: s.note,
  };
}

/** latest.json with its scaleOut section replaced (BENCH_ONLY=scaleout keeps the rest as it was). */
export function withScaleOut(latest: LatestResults, scaleOut: { at: string; result: ScaleOutResult }): LatestResults {
  return { ...latest, scaleOut: scaleOutSection(scaleOut) };
}

export function latestResults(machine: object, versions: LatestResults['versions'], comparison: ComparisonResult, aggregate: { at: string; result: AggregateBenchResult } | undefined, scaleOut?: { at: string; result: ScaleOutResult }): LatestResults {
  const a = aggregate?.result;
  return {
    at: new Date().toISOString(),
    machine,
    versions,
    events: comparison.events,
    users: comparison.users,
    runs: comparison.runs,
    pipeline: comparison.pipeline,
    pipelineWithSink: comparison.pipelineWithSink,
    kafkaStreams: comparison.kafkaStreams,
    totalsAgree: comparison.totals,
    aggregate: a && a.restoredUsers > 0
      ? { rssMiBPerMillionUsers: a.rssMiBPerMillionUsers, restoreSecondsPerMillionUsers: Number(((a.restoreSeconds / a.restoredUsers) * 1_000_000).toFixed(2)), users: a.users, measuredAt: aggregate!.at }
      : null,
    scaleOut: scaleOut ? scaleOutSection(scaleOut) : null,
  };
}
