import { mkdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { resolve } from 'node:path';
import { buildServiceBundles } from '../infra/build/serviceBundles.ts';
import { startBenchStack } from './benchStack.ts';
import { runAggregateBench, type AggregateBenchResult } from './aggregateBench.ts';
import { runHaltLatencyBench } from './haltLatencyBench.ts';
import { runIngestBench } from './ingestBench.ts';
import { runKafkaStreamsComparison } from './kafkaStreamsBench.ts';
import { buildKafkaStreamsJob, kafkaStreamsVersions } from './kafkaStreamsJob.ts';
import { latestResults, withScaleOut, type LatestResults } from './latestResults.ts';
import { runPipelineBench } from './pipelineBench.ts';
import { runScaleOutBench, type ScaleOutResult } from './scaleOutBench.ts';
import { benchSummary, updateReadmeTable } from './summary.ts';
import { runSinkFormatBench } from './sinkFormatBench.ts';

/**
 * `npm run bench`: runs the benchmarks on a real local stack and records their numbers in
 * bench/results/<name>.json (latest) and bench/results/history.jsonl (every run).
 * BENCH_EVENTS sets the number of raw events (default 1,000,000), BENCH_USERS the aggregate
 * size (default 1,000,000 users), BENCH_HALT_RUNS the halt-latency runs (default 30),
 * BENCH_RUNS the runs of the comparison with Kafka Streams (default 1; alternating which goes
 * first); BENCH_ONLY=pipeline|ingest|aggregate|halt|sink|scaleout|kafka-streams runs one of
 * them. The comparison also writes bench/results/latest.json (with the scale-out figures of
 * this run or the last recorded one); BENCH_ONLY=scaleout replaces only the scaleOut section of
 * an existing latest.json. A full run also writes
 * bench/results/<date>.json and <date>.md, and the README's table.
 */
const say = (m: string) => process.stderr.write(`[bench] ${m}\n`);
const events = Number(process.env.BENCH_EVENTS ?? 1_000_000);
const users = Number(process.env.BENCH_USERS ?? 1_000_000);
const only = process.env.BENCH_ONLY;
for (const [name, value] of [['BENCH_EVENTS', events], ['BENCH_USERS', users]] as const) {
  if (!Number.isSafeInteger(value) || value < 1_000) {
    say(`${name} must be an integer of at least 1000, got ${process.env[name]}`);
    process.exit(2);
  }
}
const haltRuns = Number(process.env.BENCH_HALT_RUNS ?? 30);
if (!Number.isSafeInteger(haltRuns) || haltRuns < 1 || haltRuns > 500) {
  say(`BENCH_HALT_RUNS must be an integer from 1 to 500, got ${process.env.BENCH_HALT_RUNS}`);
  process.exit(2);
}
const comparisonRuns = Number(process.env.BENCH_RUNS ?? 1);
if (!Number.isSafeInteger(comparisonRuns) || comparisonRuns < 1 || comparisonRuns > 9) {
  say(`BENCH_RUNS must be an integer from 1 to 9, got ${process.env.BENCH_RUNS}`);
  process.exit(2);
}
if (only !== undefined && !['pipeline', 'ingest', 'aggregate', 'halt', 'sink', 'scaleout', 'kafka-streams'].includes(only)) {
  say(`BENCH_ONLY must be pipeline, ingest, aggregate, halt, sink, scaleout or kafka-streams, got ${only}`);
  process.exit(2);
}
// Built before the stack starts: a build error should not cost a broker start. The services
// run from their bundles, as deployed, rebuilt from the sources on every run.
if (!only || only === 'kafka-streams') buildKafkaStreamsJob(say);
say(`built ${(await buildServiceBundles()).length} service bundles (dist/services)`);

const run: Record<string, object> = {};

function record(name: string, machine: object, result: object): void {
  run[name] = result;
  const entry = { bench: name, at: new Date().toISOString(), machine, result };
  writeFileSync(resolve(resultsDir, `${name}.json`), JSON.stringify(entry, null, 2) + '\n');
  const history = resolve(resultsDir, 'history.jsonl');
  writeFileSync(history, (existsSync(history) ? readFileSync(history, 'utf8') : '') + JSON.stringify(entry) + '\n');
  process.stdout.write(JSON.stringify(entry, null, 2) + '\n');
}

const resultsDir = resolve(import.meta.dirname, 'results');

/** The last recorded result of a benchmark not run this time (with when it was measured). */
function readRecorded<T>(name: string): { at: string; result: T } | undefined {
  const file = resolve(resultsDir, `${name}.json`);
  if (!existsSync(file)) return undefined;
  const entry = JSON.parse(readFileSync(file, 'utf8')) as { at: string; result: T };
  return { at: entry.at, result: entry.result };
}
mkdirSync(resultsDir, { recursive: true });
const stack = await startBenchStack(say);
try {
  const machine = { cpus: cpus().length, cpuModel: cpus()[0]?.model ?? 'unknown', memoryGiB: Math.round(totalmem() / 2 ** 30), node: process.version, kafka: stack.kafkaVersion, loadAverageAtStart: loadavg().map((x) => Number(x.toFixed(2))) };
  if (!only || only === 'pipeline') record('pipeline', machine, await runPipelineBench(stack, events, say));
  if (!only || only === 'ingest') record('ingest', machine, await runIngestBench(stack, events, say));
  if (!only || only === 'aggregate') record('aggregate', machine, await runAggregateBench(stack, users, say));
  if (!only || only === 'halt') record('halt-latency', machine, await runHaltLatencyBench(stack, haltRuns, say));
  if (!only || only === 'sink') record('sink', machine, await runSinkFormatBench(200_000, 5_000, say));
  if (!only || only === 'scaleout') {
    record('scaleout', machine, await runScaleOutBench(stack, events, say));
    const latestFile = resolve(resultsDir, 'latest.json');
    if (only && existsSync(latestFile)) {
      writeFileSync(latestFile, JSON.stringify(withScaleOut(JSON.parse(readFileSync(latestFile, 'utf8')) as LatestResults, { at: new Date().toISOString(), result: run.scaleout as ScaleOutResult }), null, 2) + '\n');
      say('wrote the scaleOut section of bench/results/latest.json');
    }
  }
  if (!only || only === 'kafka-streams') {
    const comparison = await runKafkaStreamsComparison(stack, events, comparisonRuns, say);
    record('kafka-streams', machine, comparison);
    const now = new Date().toISOString();
    const latest = latestResults(machine, { ...kafkaStreamsVersions(), kafkaBroker: stack.kafkaVersion, node: process.version }, comparison, run.aggregate ? { at: now, result: run.aggregate as AggregateBenchResult } : readRecorded<AggregateBenchResult>('aggregate'), run.scaleout ? { at: now, result: run.scaleout as ScaleOutResult } : readRecorded<ScaleOutResult>('scaleout'));
    writeFileSync(resolve(resultsDir, 'latest.json'), JSON.stringify(latest, null, 2) + '\n');
    say(`wrote bench/results/latest.json: pipeline ${latest.pipeline.eventsPerSec.toLocaleString('en-US')} events/s, Kafka Streams ${latest.kafkaStreams.eventsPerSec.toLocaleString('en-US')} events/s, ratio ${latest.pipeline.ratioToKafkaStreams}; with the sink running ${latest.pipelineWithSink.eventsPerSec.toLocaleString('en-US')} events/s, ratio ${latest.pipelineWithSink.ratioToKafkaStreams}`);
  }
  if (!only) {
    const date = new Date().toISOString().slice(0, 10);
    const markdown = benchSummary(machine, run as unknown as Parameters<typeof benchSummary>[1]);
    writeFileSync(resolve(resultsDir, `${date}.json`), JSON.stringify({ at: new Date().toISOString(), machine, results: run }, null, 2) + '\n');
    writeFileSync(resolve(resultsDir, `${date}.md`), markdown);
    updateReadmeTable(resolve(import.meta.dirname, '../README.md'), markdown);
    say(`wrote bench/results/${date}.json, ${date}.md and the README's table`);
  }
} finally {
  await stack.close();
}
