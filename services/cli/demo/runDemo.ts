import { readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { CompactedTopicTable } from '../../common/compactedTopicTable.ts';
import { readDefinitionFile } from '../../common/experimentDefinition.ts';
import { experimentStatusTable, type ExperimentStatus } from '../../common/experimentStatus.ts';
import { committedTotal, groupLag, waitUntilSettled } from '../../common/groupProgress.ts';
import type { Logger } from '../../common/logger.ts';
import { seededRandom } from '../../common/random.ts';
import type { ExperimentResults } from '../../control/liveResults.ts';
import { controlCommands, type ControlCommand } from '../../common/contracts/controlCommands.ts';
import { EventProducer } from '../../producer/eventProducer.ts';
import { applyDefinitions, moveExperiment, type CommandOutcome } from '../experiments/controlCommands.ts';
import type { Progress } from '../progress.ts';
import { formatTable } from '../reanalyze/formatTable.ts';
import { startDemoPipeline } from './demoPipeline.ts';
import { DEMO_PROFILES, userEvents, type DueEvent } from './demoTraffic.ts';

/**
 * `expctl demo`: the whole pipeline in one process, three experiments (one healthy, one with
 * a sample ratio mismatch, one with a guardrail regression), simulated users at a steady
 * rate, live progress, then results with intervals, the halts with their evidence and
 * latency, and what was left in ClickHouse. Experiments go through the control plane as in
 * production: defined and started by an experimenter's signed commands, the healthy one
 * concluded at the end. Succeeds only if the healthy experiment ran on and both broken ones
 * were halted.
 */
export const DEMO_EXPERIMENTS_DIR = resolve(import.meta.dirname, '../../../experiments/demo');
const HEALTHY = 'demo-checkout';
const MUST_HALT = ['demo-onboarding', 'demo-search'];

export interface DemoOptions {
  users: number;
  /** New users per second. */
  rate: number;
  seed: number;
  dir: string;
  cacheDir: string;
  logger: Logger;
  progress: Progress;
  print(line: string): void;
}

export interface HaltReport {
  experimentId: string;
  reason: string;
  evidence: Record<string, unknown>;
  /** From producing the exposure that completed the guard's evidence to the HALT on exp.state. */
  latencyMs: number | null;
}

export interface DemoOutcome {
  ok: boolean;
  halts: HaltReport[];
  results: ExperimentResults[];
  eventsSent: number;
  clickhouseRows: Record<string, number>;
}

export async function runDemo(options: DemoOptions): Promise<DemoOutcome> {
  const { progress, print } = options;
  const definitions = readdirSync(DEMO_EXPERIMENTS_DIR).filter((f) => /\.ya?ml$/.test(f)).sort().map((f) => readDefinitionFile(join(DEMO_EXPERIMENTS_DIR, f)));
  const pipeline = await startDemoPipeline({ dir: options.dir, cacheDir: options.cacheDir, logger: options.logger, progress });
  try {
    const { kafka, topics } = pipeline;
    const commands = { kafka, registry: pipeline.registry, topics, logger: options.logger };
    const accepted = (o: CommandOutcome) => {
      if (o.decision !== 'ACCEPTED') throw new Error(`the control service did not accept ${o.action} of ${o.experimentId}: ${o.decision}: ${o.reason}`);
      return o;
    };
    await progress.step('Defining and starting the demo experiments (signed commands, decided by the control service)', async (note) => {
      const defined = (await applyDefinitions(commands, pipeline.experimenter, definitions, 'demo experiments')).map(accepted);
      for (const o of defined) {
        accepted(await moveExperiment(commands, pipeline.experimenter, o.experimentId, 'START', 'demo traffic begins'));
        note(`${o.experimentId}: version ${o.version}, RUNNING`);
      }
    });

    // What the pipeline decided, as a feature-flag service would see it.
    const halted = new Map<string, ExperimentStatus>();
    const statusTable = experimentStatusTable(kafka, topics.state, options.logger, { onChange: (experimentId, status) => {
      if (status?.status === 'HALTED' && !halted.has(experimentId)) halted.set(experimentId, status);
    } });
    const controlTopic = new CompactedTopicTable<ControlCommand>({
      kafka, topic: topics.control, logger: options.logger,
      decode: (_key, value) => {
        const decoded = controlCommands.decode(value);
        return decoded.ok ? { key: decoded.value.commandId, value: decoded.value } : undefined;
      },
    });
    await Promise.all([statusTable.start(), controlTopic.start()]);

    const producer = await EventProducer.create({ kafka, registry: pipeline.registry, topics });
    const random = seededRandom(options.seed);
    // Per experiment, when each exposure was sent: the clock for halt latency.
    const exposureSentAt = new Map<string, number[]>(DEMO_PROFILES.map((p) => [p.experimentId, []]));
    const pending: DueEvent[] = [];
    let nextUser = 0;
    let eventsSent = 0;
    let skippedUsers = 0;
    const started = Date.now();
    let lastReport = started;
    const report = async () => {
      // Raw topics have no transaction markers, so committed offsets count records; exp.events
      // has markers, so the aggregator's progress is shown as its lag.
      const [ingested, aggregateLag] = await Promise.all([committedTotal(kafka, pipeline.groups.ingest, [topics.exposuresRaw, topics.metricsRaw]), groupLag(kafka, pipeline.groups.aggregate, [topics.events])]);
      const stored = await countRows(pipeline.clickhouse, ['exposures', 'metric_events']);
      const haltedNow = [...halted.keys()].sort();
      print(`  ${((Date.now() - started) / 1000).toFixed(0).padStart(4)} s  users ${nextUser.toLocaleString('en-US')}/${options.users.toLocaleString('en-US')}  events sent ${eventsSent.toLocaleString('en-US')}  ingested ${ingested.toLocaleString('en-US')}  aggregate lag ${aggregateLag.toLocaleString('en-US')}  in ClickHouse ${(stored.exposures! + stored.metric_events!).toLocaleString('en-US')}  halted: ${haltedNow.length ? haltedNow.join(', ') : 'none'}`);
    };
    print(`Simulating ${options.users.toLocaleString('en-US')} users at ${options.rate}/s (seed ${options.seed}); a halted experiment gets no new users, as a feature-flag service reading exp.state would do:`);
    while (nextUser < options.users || pending.length > 0) {
      const tickStart = Date.now();
      const due = Math.min(options.users, Math.floor(((tickStart - started) / 1000) * options.rate));
      for (; nextUser < due; nextUser++) {
        const events = userEvents(nextUser, tickStart, random);
        const experimentId = (events[0]!.event as { experimentId: string }).experimentId;
        if (halted.has(experimentId)) {
          skippedUsers++;
          continue;
        }
        pending.push(...events);
      }
      pending.sort((a, b) => a.dueAt - b.dueAt);
      const ready = pending.splice(0, pending.findIndex((e) => e.dueAt > tickStart) === -1 ? pending.length : pending.findIndex((e) => e.dueAt > tickStart));
      await Promise.all(ready.map((e) => (e.kind === 'exposure' ? producer.sendExposure(e.event) : producer.sendMetric(e.event))));
      const sentAt = Date.now();
      for (const e of ready) if (e.kind === 'exposure') exposureSentAt.get(e.event.experimentId)!.push(sentAt);
      eventsSent += ready.length;
      if (Date.now() - lastReport >= 5_000) {
        lastReport = Date.now();
        await report();
      }
      await new Promise((r) => setTimeout(r, Math.max(0, 100 - (Date.now() - tickStart))));
    }
    await producer.close();
    await report();

    await progress.step('Waiting for every service to catch up', async () => {
      await waitUntilSettled(kafka, pipeline.groups.ingest, [topics.exposuresRaw, topics.metricsRaw], { stableMs: 1_000 });
      await waitUntilSettled(kafka, pipeline.groups.aggregate, [topics.events], { stableMs: 1_000 });
      await waitUntilSettled(kafka, pipeline.groups.guard, [topics.aggregates], { stableMs: 1_000 });
      await waitUntilSettled(kafka, pipeline.groups.control, [topics.control], { stableMs: 1_000 });
      await waitUntilSettled(kafka, pipeline.groups.sink, [topics.events, topics.aggregates], { stableMs: 1_500 });
    });

    const results: ExperimentResults[] = [];
    for (const d of definitions) {
      const response = await fetch(`${pipeline.apiUrl}/experiments/${d.id}/results`, { headers: { authorization: `Bearer ${pipeline.tokens.analyst}` } });
      if (!response.ok) throw new Error(`admin API: results of ${d.id}: ${response.status} ${await response.text()}`);
      results.push((await response.json()) as ExperimentResults);
    }
    const halts: HaltReport[] = [...halted.values()].map((status) => {
      const command = controlTopic.get(status.commandId);
      const evidence = command ? (JSON.parse(command.evidence) as Record<string, unknown>) : {};
      const users = Object.values((evidence.users ?? {}) as Record<string, number>).reduce((n, u) => n + u, 0);
      const sent = exposureSentAt.get(status.experimentId) ?? [];
      const decisive = users > 0 && users <= sent.length ? sent[users - 1]! : undefined;
      return { experimentId: status.experimentId, reason: status.reason, evidence, latencyMs: decisive === undefined ? null : status.since - decisive };
    });
    // The healthy experiment ends as experiments do: concluded, with a decision, stored in ClickHouse.
    let conclusion: CommandOutcome | undefined;
    if (!halted.has(HEALTHY)) {
      conclusion = await progress.step(`Concluding ${HEALTHY}`, async () => {
        const o = accepted(await moveExperiment(commands, pipeline.experimenter, HEALTHY, 'CONCLUDE', 'end of the demo run', 'inconclusive'));
        await waitUntilSettled(kafka, pipeline.groups.sink, [topics.state, topics.definitions, topics.control, topics.audit], { stableMs: 1_500 });
        return o;
      });
    }
    const clickhouseRows = await countRows(pipeline.clickhouse, ['exposures', 'metric_events', 'aggregate_deltas', 'anomalies', 'control_commands', 'audit_log', 'dead_letters', 'experiment_definitions', 'experiment_conclusions']);
    await Promise.all([statusTable.stop(), controlTopic.stop()]);

    printResults(print, results);
    printHalts(print, halts);
    if (skippedUsers > 0) print(`\n${skippedUsers.toLocaleString('en-US')} simulated users arrived after their experiment was halted and were not enrolled.`);
    if (conclusion) print(`\n${HEALTHY} concluded (inconclusive) by ${pipeline.experimenter.principal}, audit record ${conclusion.auditSequence}: it enrolls no one from now on.`);
    print(`\nClickHouse (chDB at ${pipeline.chdbDir}) holds: ${Object.entries(clickhouseRows).map(([t, n]) => `${t} ${n.toLocaleString('en-US')}`).join(', ')}.`);
    print('Query it once the demo has exited (one process at a time opens a chDB directory):');
    print(`  CHDB_PATH=${pipeline.chdbDir} node bin/expctl.js query "SELECT experiment_id, variant_id, metric, users, mean FROM experiment_summary ORDER BY experiment_id, metric, variant_id"`);
    print(`  CHDB_PATH=${pipeline.chdbDir} node bin/expctl.js query "SELECT * FROM halts"`);
    print(`  CHDB_PATH=${pipeline.chdbDir} node bin/expctl.js query "SELECT experiment_id, definition_version, decision, concluded_by, concluded_at FROM experiment_conclusions"`);
    print(`  CHDB_PATH=${pipeline.chdbDir} node bin/expctl.js audit verify --source clickhouse`);

    const haltedIds = new Set(halts.map((h) => h.experimentId));
    const ok = !haltedIds.has(HEALTHY) && MUST_HALT.every((id) => haltedIds.has(id));
    print(ok ? `\nOK: ${HEALTHY} ran on; ${MUST_HALT.join(' and ')} were halted.` : `\nFAILED: expected ${HEALTHY} running and ${MUST_HALT.join(', ')} halted; halted: ${[...haltedIds].join(', ') || 'none'}.`);
    return { ok, halts, results, eventsSent, clickhouseRows };
  } finally {
    await progress.step('Stopping the pipeline', () => pipeline.stop());
  }
}

async function countRows(clickhouse: { client: { query(q: { query: string; format: 'JSONEachRow' }): Promise<{ json<T>(): Promise<T[]> }> } }, tables: string[]): Promise<Record<string, number>> {
  const result = await clickhouse.client.query({ query: `SELECT ${tables.map((t) => `(SELECT count() FROM ${t}) AS ${t}`).join(', ')}`, format: 'JSONEachRow' });
  const [row] = await result.json<Record<string, string>>();
  return Object.fromEntries(tables.map((t) => [t, Number(row?.[t] ?? 0)]));
}

function printResults(print: (line: string) => void, results: ExperimentResults[]): void {
  for (const r of results) {
    print(`\n${r.experimentId}: ${r.status}${r.statusDetail?.status === 'HALTED' ? ` since ${new Date(r.statusDetail.since).toISOString()}` : ''}, ${r.users.toLocaleString('en-US')} users`);
    const rows: string[][] = [];
    for (const v of r.variants) {
      for (const m of v.metrics) {
        const scale = m.type === 'conversion' ? 100 : 1;
        const unit = m.type === 'conversion' ? ' %' : '';
        const diffUnit = m.type === 'conversion' ? ' pts' : '';
        const fmt = (x: number) => (x * scale).toFixed(m.type === 'conversion' ? 2 : 1);
        rows.push([
          v.variantId,
          v.users.toLocaleString('en-US'),
          `${(v.share * 100).toFixed(1)} % (planned ${(v.plannedWeight * 100).toFixed(0)} %)`,
          m.metric,
          m.mean === null ? '-' : `${fmt(m.mean)}${unit}`,
          m.interval95 ? `[${fmt(m.interval95[0])}, ${fmt(m.interval95[1])}]` : '-',
          m.versusControl ? `${m.versusControl.difference >= 0 ? '+' : ''}${fmt(m.versusControl.difference)}${diffUnit}` : '',
          m.versusControl?.alwaysValid ? `[${fmt(m.versusControl.alwaysValid.lower)}, ${fmt(m.versusControl.alwaysValid.upper)}]` : '',
        ]);
      }
    }
    print(formatTable(['variant', 'users', 'share', 'metric', 'mean per user', '95 % interval', 'vs control', 'always-valid interval'], rows).trimEnd());
  }
}

function printHalts(print: (line: string) => void, halts: HaltReport[]): void {
  print('\nHalts (signed by the guardian, verified and applied by the control service):');
  if (halts.length === 0) print('  none');
  for (const h of halts) {
    const e = h.evidence;
    const detail = e.test === undefined ? '' : typeof e.pValue === 'number' ? `p = ${(e.pValue as number).toExponential(2)} (threshold ${e.threshold}), users ${JSON.stringify(e.users)}` : `difference ${Number(e.difference).toFixed(1)}, always-valid interval [${Number(e.lower).toFixed(1)}, ${Number(e.upper).toFixed(1)}] beyond tolerance ${Number(e.tolerance).toFixed(1)} (${e.harmfulDirection}), users ${JSON.stringify(e.users)}`;
    print(`  ${h.experimentId}: ${h.reason}`);
    if (detail) print(`    evidence: ${e.test}; ${detail}`);
    print(`    latency from the decisive event produced to HALTED on exp.state: ${h.latencyMs === null ? 'n/a' : `${h.latencyMs} ms`}`);
  }
}
