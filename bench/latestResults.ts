import type { AggregateBenchResult } from './aggregateBench.ts';
import type { ComparisonResult } from './kafkaStreamsBench.ts';

/**
 * bench/results/latest.json: the step-13 figures in one place. The comparison with Kafka
 * Streams from this run; the aggregator's memory and restore per million users from the
 * aggregate bench of this run, or, when it did not run (BENCH_ONLY=kafka-streams), from its
 * last recorded result, with the time it was measured.
 */
export interface LatestResults {
  at: string;
  machine: object;
  versions: { node: string; kafkaBroker: string; kafkaStreams: string; avro: string; java: string };
  events: number;
  users: number;
  runs: number;
  pipeline: ComparisonResult['pipeline'];
  kafkaStreams: ComparisonResult['kafkaStreams'];
  totalsAgree: ComparisonResult['totals'];
  aggregate: { rssMiBPerMillionUsers: number; restoreSecondsPerMillionUsers: number; users: number; measuredAt: string } | null;
}

export function latestResults(machine: object, versions: LatestResults['versions'], comparison: ComparisonResult, aggregate: { at: string; result: AggregateBenchResult } | undefined): LatestResults {
  const a = aggregate?.result;
  return {
    at: new Date().toISOString(),
    machine,
    versions,
    events: comparison.events,
    users: comparison.users,
    runs: comparison.runs,
    pipeline: comparison.pipeline,
    kafkaStreams: comparison.kafkaStreams,
    totalsAgree: comparison.totals,
    aggregate: a && a.restoredUsers > 0
      ? { rssMiBPerMillionUsers: a.rssMiBPerMillionUsers, restoreSecondsPerMillionUsers: Number(((a.restoreSeconds / a.restoredUsers) * 1_000_000).toFixed(2)), users: a.users, measuredAt: aggregate!.at }
      : null,
  };
}
