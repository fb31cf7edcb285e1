import { readFileSync, writeFileSync } from 'node:fs';
import type { AggregateBenchResult } from './aggregateBench.ts';
import type { HaltLatencyResult } from './haltLatencyBench.ts';
import type { IngestBenchResult } from './ingestBench.ts';
import type { ComparisonResult } from './kafkaStreamsBench.ts';
import type { PipelineBenchResult } from './pipelineBench.ts';
import type { ScaleOutResult } from './scaleOutBench.ts';

/** The markdown summary of a full bench run, and the README's copy of it (between markers). */
export interface BenchRun {
  pipeline: PipelineBenchResult;
  ingest: IngestBenchResult;
  aggregate: AggregateBenchResult;
  'halt-latency': HaltLatencyResult;
  'kafka-streams'?: ComparisonResult;
  scaleout?: ScaleOutResult;
}

const START = '<!-- bench:start -->';
const END = '<!-- bench:end -->';

export function benchSummary(machine: { cpus: number; cpuModel: string; memoryGiB: number; node: string; kafka: string }, run: BenchRun): string {
  const n = (x: number) => x.toLocaleString('en-US');
  const p = run.pipeline;
  const h = run['halt-latency'];
  const rows: [string, string][] = [
    [`end to end, raw topics → exp.aggregates (${n(p.events)} events, ${n(p.users)} users)`, `${n(p.rawToAggregatesPerSec)} events/s`],
    ['end to end, raw topics → ClickHouse rows', `${n(p.rawToClickHousePerSec)} events/s`],
    ['raw kafkajs consume of the same events (ceiling)', `${n(p.rawConsumePerSec)} events/s`],
    ['end to end / raw consume', `${p.ratioToRawConsume}`],
    ['peak RSS: ingest + aggregate + sink', `${p.peakRssMiB.ingest} + ${p.peakRssMiB.aggregate} + ${p.peakRssMiB.sink} = ${p.peakRssMiB.total} MiB`],
    [`halt latency, exposure produced → HALTED on exp.state (${h.runs} runs)`, `p50 ${h.p50Ms} ms, p99 ${h.p99Ms} ms (max ${h.maxMs} ms)`],
    [`ingest alone (${n(run.ingest.events)} events)`, `${n(run.ingest.ingestPerSec)} events/s (${n(run.ingest.ingestSteadyPerSec)}/s steady), peak RSS ${run.ingest.ingestPeakRssMiB} MiB`],
    [`aggregate alone (${n(run.aggregate.users)} users)`, `${n(run.aggregate.eventsPerSec)} events/s, ${run.aggregate.rssMiBPerMillionUsers} MiB per million users, state restored in ${((run.aggregate.restoreSeconds / Math.max(1, run.aggregate.restoredUsers)) * 1_000_000).toFixed(1)} s per million users`],
  ];
  const k = run['kafka-streams'];
  if (k) rows.push(...comparisonRows(k));
  if (run.scaleout) rows.push(...scaleOutRows(run.scaleout));
  return [
    `Measured ${new Date().toISOString().slice(0, 10)} on ${machine.cpus} × ${machine.cpuModel}, ${machine.memoryGiB} GiB, Node ${machine.node}, Kafka ${machine.kafka}; broker, services and load generator share the machine.`,
    '',
    '| measure | value |',
    '|---|---|',
    ...rows.map(([k, v]) => `| ${k} | ${v} |`),
    '',
  ].join('\n');
}

/** The comparison's rows of the table (also used by hand for a BENCH_ONLY=kafka-streams run). */
export function comparisonRows(k: ComparisonResult): [string, string][] {
  const n = (x: number) => x.toLocaleString('en-US');
  const spread = (xs: number[]) => (xs.length > 1 ? ` (median; runs: ${xs.map(n).join(', ')})` : '');
  return [
    [`pipeline (ingest + aggregate), raw topics → per-variant sums (${n(k.events)} events, ${n(k.users)} users, ${k.runs} run${k.runs > 1 ? 's' : ''})`, `${n(k.pipeline.eventsPerSec)} events/s${spread(k.pipeline.eventsPerSecRuns)}`],
    [`Kafka Streams, the same job on the same events (${k.kafkaStreams.processingGuarantee}, ${k.kafkaStreams.store.split(" ")[0]}, ${k.kafkaStreams.heap})`, `${n(k.kafkaStreams.eventsPerSec)} events/s${spread(k.kafkaStreams.eventsPerSecRuns)}`],
    ['pipeline / Kafka Streams', `${k.pipeline.ratioToKafkaStreams}${k.runs > 1 ? ` (of the medians; runs: ${k.pipeline.ratioRuns.join(', ')})` : ''}`],
    [`pipeline with the ClickHouse sink running (a run of its own): raw topics → per-variant sums / → ClickHouse rows`, `${n(k.pipelineWithSink.eventsPerSec)} events/s${spread(k.pipelineWithSink.eventsPerSecRuns)} / ${n(k.pipelineWithSink.toClickHouseEventsPerSec)} events/s${spread(k.pipelineWithSink.toClickHouseEventsPerSecRuns)}`],
    ['pipeline with the sink / Kafka Streams', `${k.pipelineWithSink.ratioToKafkaStreams}${k.runs > 1 ? ` (of the medians; runs: ${k.pipelineWithSink.ratioRuns.join(', ')})` : ''}`],
    ['peak RSS: pipeline (ingest + aggregate) / Kafka Streams JVM', `${k.pipeline.peakRssMiB.ingest} + ${k.pipeline.peakRssMiB.aggregate} = ${k.pipeline.peakRssMiB.total} MiB / ${k.kafkaStreams.peakRssMiB} MiB`],
    ['CPU seconds per run, own processes + broker, from start: pipeline / Kafka Streams', `${cpuRuns(k.pipeline.cpuSecondsRuns)} / ${cpuRuns(k.kafkaStreams.cpuSecondsRuns)}`],
    ['final per-variant totals, pipeline vs Kafka Streams', `equal (${k.totals.cells} cells; ${k.totals.sumTolerance})`],
  ];
}

/** The scale-out bench's rows of the table (also used by hand for a BENCH_ONLY=scaleout run). */
export function scaleOutRows(s: ScaleOutResult): [string, string][] {
  const n = (x: number) => x.toLocaleString('en-US');
  const rows: [string, string][] = s.aggregate.map((r, i) => [
    i === 0 ? `aggregate × ${r.instances} in one group, exp.events → exp.aggregates (${s.partitions} partitions, ${n(s.events)} events; all on this machine: the cost of scaling out, not a speed-up)` : `aggregate × ${r.instances}, the same events`,
    `${n(r.eventsPerSec)} events/s (${n(r.eventsPerSecIncludingStartup)}/s from process start; group settled after ${r.settledSeconds} s, ${r.assignments} assignment${r.assignments === 1 ? '' : 's'}), peak RSS ${r.peakRssMiB.join(' + ')} MiB`,
  ]);
  rows.push([`final per-variant totals, 1 vs ${s.aggregate.map((r) => r.instances).slice(1).join(' and ')} aggregate instances`, `identical (${s.totals.cells} cells, ${n(s.totals.users)} users; ${s.aggregate.reduce((t, r) => t + r.reprocessedRecords, 0)} records processed twice)`]);
  rows.push(['events per busy core-second (1 / process CPU seconds per event): ingest / aggregate', `${n(s.ingest.eventsPerBusyCore)} / ${n(s.aggregate[0]?.eventsPerBusyCore ?? 0)}`]);
  for (const c of s.estimate?.clusters ?? []) {
    rows.push([`paper estimate for ${n(c.eventsPerSec)} events/s (README "Scaling out")`, `${n(c.ingestInstances)} ingest + ${n(c.aggregateInstances)} aggregate instances (${n(c.serviceCores)} cores), ${n(c.partitions.raw)} / ${n(c.partitions.events)} partitions (raw / exp.events), ${n(c.brokers)} brokers`]);
  }
  return rows;
}

export function updateReadmeTable(readmePath: string, markdown: string): void {
  const readme = readFileSync(readmePath, 'utf8');
  const start = readme.indexOf(START);
  const end = readme.indexOf(END);
  if (start < 0 || end < start) return;
  writeFileSync(readmePath, `${readme.slice(0, start + START.length)}\n${markdown}${readme.slice(end)}`);
}

/** Each run's CPU seconds as `engine + broker` (older results recorded none). */
function cpuRuns(runs: { engine: number; broker?: number }[] | undefined): string {
  if (!runs?.length) return 'not recorded';
  return runs.map((c) => (c.broker === undefined ? `${c.engine}` : `${c.engine} + ${c.broker}`)).join(', ');
}
