import { mkdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { resolve } from 'node:path';
import { startBenchStack } from './benchStack.ts';
import { runIngestBench } from './ingestBench.ts';

/**
 * `npm run bench`: runs the benchmarks on a real local stack and records their numbers in
 * bench/results/<name>.json (latest) and bench/results/history.jsonl (every run).
 * BENCH_EVENTS sets the size (default 200,000).
 */
const say = (m: string) => process.stderr.write(`[bench] ${m}\n`);
const events = Number(process.env.BENCH_EVENTS ?? 200_000);
if (!Number.isSafeInteger(events) || events < 1_000) {
  say(`BENCH_EVENTS must be an integer of at least 1000, got ${process.env.BENCH_EVENTS}`);
  process.exit(2);
}

const resultsDir = resolve(import.meta.dirname, 'results');
mkdirSync(resultsDir, { recursive: true });
const stack = await startBenchStack(say);
try {
  const machine = { cpus: cpus().length, cpuModel: cpus()[0]?.model ?? 'unknown', memoryGiB: Math.round(totalmem() / 2 ** 30), node: process.version, kafka: stack.kafkaVersion };
  const ingest = await runIngestBench(stack, events, say);
  const record = { bench: 'ingest', at: new Date().toISOString(), machine, result: ingest };
  writeFileSync(resolve(resultsDir, 'ingest.json'), JSON.stringify(record, null, 2) + '\n');
  const history = resolve(resultsDir, 'history.jsonl');
  writeFileSync(history, (existsSync(history) ? readFileSync(history, 'utf8') : '') + JSON.stringify(record) + '\n');
  process.stdout.write(JSON.stringify(record, null, 2) + '\n');
} finally {
  await stack.close();
}
