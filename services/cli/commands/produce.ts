import { createReadStream, existsSync } from 'node:fs';
import type { Command } from 'commander';
import type { Config } from '../../common/config.ts';
import { PipelineError } from '../../common/errors.ts';
import { createServiceContext } from '../../common/serviceProcess.ts';
import { EventProducer } from '../../producer/eventProducer.ts';
import { boundedLines, parseEventLine } from '../../producer/jsonLines.ts';
import { consumerGroup } from '../../common/topics.ts';
import { waitForIngestVerdicts } from '../produce/ingestVerdicts.ts';

/**
 * `expctl produce exposures|metrics --file events.jsonl`: publishes JSON lines as Avro
 * events. Bad lines are reported with their line numbers and skipped; the good ones are
 * sent. Progress goes to stderr; the exit status is 1 when any line was bad. A line over
 * LINE_LIMITS.lineChars (64 Ki characters) is bad and is never held in memory whole.
 * With --wait it then waits until ingest has decided every event it sent and reports how many
 * were valid and how many were dead-lettered, by reason; the exit status is 1 when any was.
 */
const KINDS = { exposures: 'exposure', metrics: 'metric' } as const;
const MAX_PENDING = 10_000;

export function registerProduceCommand(program: Command, loadConfig: () => Config): void {
  program
    .command('produce')
    .description('publish exposure or metric events from a JSON-lines file (one event per line)')
    .argument('<kind>', 'exposures | metrics')
    .requiredOption('-f, --file <path>', "JSON-lines file, or '-' for standard input")
    .option('--max-errors <n>', 'stop after this many bad lines', (v) => positiveInt(v, '--max-errors'), 1_000)
    .option('--wait', 'wait until ingest has decided every event sent; report valid and dead-lettered counts by reason (exit 1 if any was dead-lettered)')
    .option('--wait-timeout <seconds>', `give up waiting after this long (at most ${MAX_WAIT_S})`, (v) => boundedInt(v, '--wait-timeout', MAX_WAIT_S), 120)
    .option('--json', 'with --wait: print the verdicts as JSON on stdout')
    .action(async (kindArg: string, options: { file: string; maxErrors: number; wait?: boolean; waitTimeout: number; json?: boolean }) => {
      const kind = KINDS[kindArg as keyof typeof KINDS];
      if (!kind) throw new PipelineError('INPUT_INVALID', `unknown kind '${kindArg}': use exposures or metrics`);
      if (options.file !== '-' && !existsSync(options.file)) throw new PipelineError('INPUT_INVALID', `no such file: ${options.file}`);
      const context = createServiceContext('expctl', loadConfig());
      const producer = await EventProducer.create({ kafka: context.kafka, registry: context.registry, topics: context.topics, trackOffsets: options.wait === true });
      const summary = await produceLines(kind, options.file, producer, options.maxErrors);
      await producer.close();
      const rate = Math.round(summary.sent / Math.max(summary.seconds, 0.001));
      process.stderr.write(`sent ${summary.sent} ${kindArg} in ${summary.seconds.toFixed(1)} s (${rate}/s); ${summary.bad} bad line(s) of ${summary.lines}${summary.stopped ? ` (stopped after ${options.maxErrors} errors)` : ''}\n`);
      if (summary.bad > 0) process.exitCode = 1;
      if (!options.wait) return;
      const groupId = consumerGroup(context.config.kafka.topicPrefix, 'ingest');
      process.stderr.write(`waiting for ingest (group ${groupId}) to decide ${summary.sent} event(s) ...\n`);
      const verdicts = await waitForIngestVerdicts(context.kafka, {
        groupId, dlqTopic: context.topics.dlq, sent: producer.sentOffsets(), timeoutMs: options.waitTimeout * 1000, logger: context.logger,
        progress: (behind) => process.stderr.write(`… ingest is still behind: ${behind}\n`),
      });
      const reasons = Object.entries(verdicts.byReason).sort((a, b) => b[1] - a[1]);
      if (options.json) process.stdout.write(`${JSON.stringify({ sent: verdicts.sent, badLines: summary.bad, valid: verdicts.valid, deadLettered: verdicts.deadLettered, byReason: verdicts.byReason, examples: verdicts.examples })}\n`);
      process.stderr.write(`ingest decided ${verdicts.sent}: ${verdicts.valid} valid, ${verdicts.deadLettered} dead-lettered${reasons.length ? ` (${reasons.map(([r, n]) => `${r}: ${n}`).join(', ')})` : ''}\n`);
      for (const e of verdicts.examples) process.stderr.write(`  e.g. ${e.reason} at ${e.topic}[${e.partition}]@${e.offset}: ${e.message}\n`);
      if (verdicts.deadLettered > 0) process.exitCode = 1;
    });
}

async function produceLines(kind: 'exposure' | 'metric', file: string, producer: EventProducer, maxErrors: number) {
  const started = Date.now();
  const input = file === '-' ? process.stdin : createReadStream(file, { encoding: 'utf8' });
  const label = file === '-' ? 'stdin' : file;
  let lineNumber = 0;
  let sent = 0;
  let bad = 0;
  let stopped = false;
  let pending: Promise<void>[] = [];
  const progress = setInterval(() => process.stderr.write(`… ${lineNumber} lines read, ${sent} sent, ${bad} bad (${Math.round(sent / ((Date.now() - started) / 1000))}/s)\n`), 2_000);
  try {
    for await (const read of boundedLines(input)) {
      lineNumber++;
      if ('line' in read && read.line.trim() === '') continue;
      const parsed = 'tooLong' in read ? { ok: false as const, error: read.error } : kind === 'exposure' ? parseEventLine('exposure', read.line) : parseEventLine('metric', read.line);
      if (!parsed.ok) {
        bad++;
        process.stderr.write(`${label}:${lineNumber}: ${parsed.error}\n`);
        if (bad >= maxErrors) {
          stopped = true;
          break;
        }
        continue;
      }
      pending.push((parsed.event && 'experimentId' in parsed.event ? producer.sendExposure(parsed.event) : producer.sendMetric(parsed.event)).then(() => void sent++));
      // Bounded memory on large files: wait for acknowledgements every so often.
      if (pending.length >= MAX_PENDING) {
        await Promise.all(pending);
        pending = [];
      }
    }
    await producer.flush();
    await Promise.all(pending);
  } finally {
    clearInterval(progress);
    if (input !== process.stdin) input.destroy();
  }
  return { lines: lineNumber, sent, bad, stopped, seconds: (Date.now() - started) / 1000 };
}

const MAX_WAIT_S = 3_600;

function boundedInt(value: string, flag: string, max: number): number {
  const n = positiveInt(value, flag);
  if (n > max) throw new PipelineError('INPUT_INVALID', `${flag} must be at most ${max}, got '${value}'`);
  return n;
}

function positiveInt(value: string, flag: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 1) throw new PipelineError('INPUT_INVALID', `${flag} must be a positive integer, got '${value}'`);
  return n;
}
