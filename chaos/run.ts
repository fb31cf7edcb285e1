import { EventEmitter } from 'node:events';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Command } from 'commander';
import { buildServiceBundles } from '../infra/build/serviceBundles.ts';
import { applyDefinitions, loadSigner, moveExperiment, type CommandContext, type CommandOutcome, type CommandSigner } from '../services/cli/experiments/controlCommands.ts';
import { createKafka } from '../services/common/kafka.ts';
import { createLogger, type Logger } from '../services/common/logger.ts';
import { SchemaRegistryClient } from '../services/common/schemaRegistryClient.ts';
import type { ExperimentDefinition } from '../services/common/experimentDefinition.ts';
import { topicNames } from '../services/common/topics.ts';
import { runChecks, type CheckOutcome } from './checks.ts';
import { drillOptions, SERVICE_NAMES, type DrillOptions, type ServiceName } from './drillOptions.ts';
import { BROKEN_EXPERIMENT, BROKEN_SPLIT, HEALTHY_EXPERIMENTS, prepareDrillFiles } from './drillSetup.ts';
import { runFault, type FaultResult } from './faults.ts';
import { watchForHalt } from './haltWatch.ts';
import { describeLag, PIPELINE_GROUPS, PipelineWatch } from './pipelineWatch.ts';
import { faultLine, phaseLine, summarize, type DrillSummary } from './report.ts';
import { summarizeHealing } from './selfHealing.ts';
import { ServiceProcess, type UnexpectedExit } from './serviceProcesses.ts';
import { StackControl } from './stackControl.ts';
import { TrafficGenerator } from './traffic.ts';
import type { TrafficExperiment } from './trafficPlan.ts';

/**
 * `npm run chaos`: the local stack and every service as separate processes, a steady stream
 * of known events, faults injected one after another (broker and registry SIGKILL with
 * `expctl stack up` as the documented recovery, a service paused past its session timeout,
 * a service SIGKILLed and started again), then, with no other intervention, the checks:
 * raw in = valid + DLQ, aggregates = an independent recomputation, each source record once
 * in every ClickHouse table, and the guard still halting a broken experiment. Exit 0 only if
 * everything held. See chaos/README.md.
 */
const ROOT = resolve(import.meta.dirname, '..');
/** What the phases after the faults need at least: the guard's halt, catch-up, stopping, checks, clean-up. */
const TAIL_MS = 150_000;

// While the broker restarts, kafkajs queues its requests on a socket that is still connecting
// (Node adds a 'connect' listener per queued write) and Node warns past 10; expected here.
EventEmitter.defaultMaxListeners = 50;

const program = new Command('chaos')
  .description('fault-injection drill of the whole pipeline; exit 0 only if nothing was lost or doubled and every fault healed by itself')
  .option('--json', 'end with one JSON line on stdout: faults with recovery times, lost, duplicated, manualRestarts, checks')
  .option('--quick', 'the shortened form for CI: the four fault kinds once each, less traffic (about 2-3 minutes)')
  .option('--seed <n>', 'seed of the simulated traffic (default 1)')
  .option('--dir <dir>', 'working directory for the run (must not exist or be empty; default: a fresh temporary one)')
  .option('--keep', 'keep the working directory (stack data, service logs, chDB) after the run')
  .option('--rate <events>', 'events per second to produce (default 300, --quick 200)')
  .option('--faults <list>', 'faults in order, e.g. broker-kill,registry-kill,service-pause:aggregate,service-kill:sink')
  .option('--session-timeout-ms <ms>', 'consumer group session timeout given to every service (default 6000); a pause lasts 1.5 times it')
  .option('--health-stall-ms <ms>', "HEALTH_STALL_MS given to every service (default: the services' own, 30000)")
  .allowExcessArguments(false);
program.parse(process.argv);

let options: DrillOptions;
try {
  options = drillOptions(program.opts());
} catch (err) {
  process.stderr.write(`chaos: ${(err as Error).message}\n`);
  process.exit(2);
}

const dir = prepareDir(options.dir);
const startedAt = Date.now();
const faults: FaultResult[] = [];
const failures: string[] = [];
const unexpectedExits: UnexpectedExit[] = [];
const services = new Map<ServiceName, ServiceProcess>();
let stack: StackControl | undefined;
let watch: PipelineWatch | undefined;
let traffic: TrafficGenerator | undefined;
let outcome: CheckOutcome | undefined;
let guardResult: DrillSummary['guard'];
let catchUp: DrillSummary['catchUp'];
let trafficStats: DrillSummary['traffic'];
let selfHealing: DrillSummary['selfHealing'];

let interrupted = false;
/** Progress of the drill itself; silent once a signal has cut it short (the clean-up speaks then). */
const say = (line: string) => {
  if (!interrupted) phaseLine(line);
};

let cleaning: Promise<void> | undefined;
const cleanUp = () =>
  (cleaning ??= (async () => {
    await traffic?.abort().catch(() => {});
    await watch?.stop().catch(() => {});
    await Promise.all([...services.values()].map((s) => s.stop(15_000).catch(() => {})));
    await Promise.all([...services.values()].map((s) => s.closeLog().catch(() => {})));
    if (stack) {
      await stack.down().catch((err: unknown) => phaseLine(`clean-up: expctl stack down failed (${(err as Error).message.split('\n')[0]}); killing the stack's processes`));
      for (const pid of stack.livePids()) killQuietly(pid);
    }
    if (options.keep) phaseLine(`kept ${dir} (logs in ${join(dir, 'logs')})`);
    else rmSync(dir, { recursive: true, force: true });
  })());
for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
  process.once(signal, () => {
    interrupted = true;
    phaseLine(`${signal}: stopping every process the drill started`);
    void cleanUp().finally(() => process.exit(code));
  });
}
// Last resort if the process dies some other way: nothing the drill started may outlive it.
process.once('exit', () => {
  for (const s of services.values()) if (s.running && s.pid) killQuietly(s.pid);
  for (const pid of stack?.livePids() ?? []) killQuietly(pid);
});

try {
  await drill();
} catch (err) {
  failures.push(`the drill stopped early: ${(err as Error).message}`);
  phaseLine(`ABORTED: ${(err as Error).message}`);
} finally {
  await cleanUp();
}
const summary = summarize({ mode: options.quick ? 'quick' : 'full', seed: options.seed, startedAt, faults, unexpectedExits, failures, outcome, ...(trafficStats ? { traffic: trafficStats } : {}), ...(guardResult ? { guard: guardResult } : {}), ...(catchUp ? { catchUp } : {}), ...(selfHealing ? { selfHealing } : {}), ...(options.keep ? { dir } : {}) });
phaseLine(
  summary.ok
    ? `PASSED in ${summary.durationSeconds} s: ${faults.length} faults healed by themselves, lost 0, duplicated 0, manual restarts 0`
    : `FAILED after ${summary.durationSeconds} s (lost ${summary.lost ?? '?'}, duplicated ${summary.duplicated ?? '?'}):\n${summary.failures.map((f) => `  - ${f}`).join('\n')}`,
);
if (options.json) process.stdout.write(JSON.stringify(summary) + '\n');
process.exit(summary.ok ? 0 : 1);

async function drill(): Promise<void> {
  const files = await prepareDrillFiles(dir, options.sessionTimeoutMs, options.healthStallMs);
  const logger = createLogger({ level: 'warn', name: 'chaos', file: join(files.logDir, 'drill.log') });
  const topics = topicNames('');
  say(`setup: ${options.quick ? 'quick' : 'full'} drill, seed ${options.seed}, ${options.rate} events/s, session timeout ${options.sessionTimeoutMs / 1000} s${options.healthStallMs ? `, HEALTH_STALL_MS ${options.healthStallMs}` : ''}, faults ${options.faults.map((f) => f.kind + (f.service ? `:${f.service}` : '')).join(', ')}; working in ${dir}`);

  stack = new StackControl(files.stackDir, resolve(ROOT, process.env.EXP_CACHE_DIR ?? '.cache'), join(files.logDir, 'stack.log'));
  let t = Date.now();
  const state = await stack.up();
  say(`stack: Apache Kafka ${state.kafka.version} at ${state.kafka.brokers.join(',')} (pid ${state.kafka.pid}), schema registry at ${state.registry.url} (pid ${state.registry.pid}), up in ${secondsSince(t)} s`);
  const currentStack = stack;
  const endpoints = () => currentStack.endpoints();
  const kafka = () => createKafka({ brokers: endpoints().brokers, clientId: 'chaos-drill', logger });

  t = Date.now();
  const bundles = await buildServiceBundles();
  say(`bundles: ${bundles.length} services built from the sources in ${Date.now() - t} ms (dist/services)`);
  t = Date.now();
  for (const name of SERVICE_NAMES) services.set(name, new ServiceProcess(name, files.metricsPorts[name], files.env[name], files.logDir, (exit) => onUnexpectedExit(exit)));
  await Promise.all([...services.values()].map((s) => s.start()));
  say(`services: ${[...services.values()].map((s) => `${s.name} (pid ${s.pid}, :${s.metricsPort})`).join(', ')} started in ${secondsSince(t)} s; admin API on :${files.adminApiPort}`);

  // The drill's experimenter defines the experiments and starts them through the control
  // service, as `expctl experiments apply` and `start` do; traffic only once both are ACCEPTED.
  const signer = loadSigner(files.experimenter.keyFile, files.experimenter.principal);
  const context = (): CommandContext => ({ kafka: kafka(), registry: new SchemaRegistryClient(endpoints().registryUrl), topics, logger });
  const live = await defineAndStart(context(), signer, [...HEALTHY_EXPERIMENTS], 'chaos drill: healthy experiments');
  say(`experiments: ${live.map((o) => `${o.experimentId} v${o.version}`).join(', ')} defined and started through the control service (as expctl experiments apply and start do)`);

  watch = new PipelineWatch(endpoints, topics);
  watch.start(1_000);
  const generator = new TrafficGenerator({ endpoints, topics, rate: options.rate, seed: options.seed, logger });
  traffic = generator;
  generator.start(HEALTHY_EXPERIMENTS.map((d) => healthyTraffic(d.id)));
  await sleep(options.warmupMs);
  const warm = await watch.sample();
  const moving = watch.movingAt(warm.at, 4_000);
  const stalled = PIPELINE_GROUPS.filter((g) => g.flowing && !moving.has(g.service)).map((g) => g.service);
  say(`warm-up: ${options.warmupMs / 1000} s of traffic, ${trafficLine(generator)}; committed ${committedLine(warm)}${stalled.length ? `; NOT MOVING: ${stalled.join(', ')}` : ''}`);
  if (stalled.length > 0) failures.push(`before any fault, these services were not making progress: ${stalled.join(', ')} (${describeLag(warm, stalled)})`);

  for (const plan of options.faults) {
    // What comes after the faults needs about TAIL_MS; a fault that could not heal in time is skipped.
    const recoveryTimeoutMs = Math.min(options.recoveryTimeoutMs, timeLeft() - TAIL_MS);
    if (recoveryTimeoutMs < 20_000) {
      const skipped: FaultResult = { kind: plan.kind, target: plan.service ?? (plan.kind === 'broker-kill' ? 'kafka' : 'schema-registry'), injectedAt: Date.now(), recovered: false, recoverySeconds: null, actions: [], problems: [`skipped: not enough of the drill's ${options.budgetMs / 1000} s budget left`] };
      faults.push(skipped);
      say(faultLine(skipped));
      continue;
    }
    const result = await runFault(plan, { stack: currentStack, services, watch, sessionTimeoutMs: options.sessionTimeoutMs, recoveryTimeoutMs });
    faults.push(result);
    say(faultLine(result));
    await sleep(Math.min(options.settleMs, Math.max(0, timeLeft() - TAIL_MS)));
  }

  await phase('guard', () => guardPhase(context, signer, kafka, logger));

  t = Date.now();
  await generator.stop(clamp(timeLeft() - 100_000, 5_000, 60_000));
  const stats = generator.stats();
  trafficStats = { generated: stats.generated, acknowledged: stats.acked, failedSends: stats.failedSends, users: stats.users };
  say(`traffic: stopped; ${stats.generated.toLocaleString('en-US')} records from ${stats.users.toLocaleString('en-US')} users, ${stats.acked.toLocaleString('en-US')} acknowledged by the broker (${stats.failedSends} sent again after a failed send${stats.pending ? `, ${stats.pending} never acknowledged` : ''})`);

  t = Date.now();
  catchUp = await waitForCatchUp(watch, clamp(timeLeft() - 70_000, 10_000, options.catchUpTimeoutMs));
  say(catchUp.caughtUp ? `catch-up: every consumer group caught up in ${catchUp.seconds} s` : `catch-up: NOT caught up after ${catchUp.seconds} s: ${catchUp.lag}`);
  await watch.stop();
  const health = await Promise.all([...services.values()].map(async (s) => ({ name: s.name, ...(await s.health()) })));
  const sick = health.filter((h) => !h.ok);
  say(sick.length === 0 ? 'health: every service answers /healthz 200' : `health: /healthz not 200: ${sick.map((h) => `${h.name}: ${h.problems.join('; ')}`).join(' | ')}`);
  for (const h of sick) failures.push(`${h.name} /healthz not 200 after the catch-up: ${h.problems.join('; ')}`);

  const stops = await Promise.all(
    [...services.values()].map(async (s) => {
      if (!s.running) return `${s.name} was not running`;
      const r = await s.stop(35_000);
      if (r.forced || r.code !== 0) failures.push(`${s.name} did not stop cleanly on SIGTERM (${r.forced ? 'SIGKILLed after 35 s' : r.signal ?? `exit ${r.code}`})`);
      return `${s.name} ${r.forced ? 'did not stop within 35 s (SIGKILLed)' : r.signal ? `ended by ${r.signal}` : `exit ${r.code}`}`;
    }),
  );
  say(`services: stopped with SIGTERM: ${stops.join(', ')}`);
  await Promise.all([...services.values()].map((s) => s.closeLog()));
  selfHealing = Object.fromEntries([...services.values()].map((s) => [s.name, summarizeHealing(readFileSync(s.logFile, 'utf8'))]));
  say(`self-healing: ${Object.entries(selfHealing).map(([name, h]) => `${name} ${h.replacements} loop/reader replacement(s)${h.replacedRightAfterStart ? ` (${h.replacedRightAfterStart} within 5 s of a start)` : ''}`).join(', ')}`);

  t = Date.now();
  outcome = await phase('checks', () => runChecks({
    brokers: endpoints().brokers,
    topics,
    sent: generator.records,
    definitions: [...HEALTHY_EXPERIMENTS, BROKEN_EXPERIMENT],
    sinkChdbDir: files.sinkChdbDir,
    brokenExperiment: BROKEN_EXPERIMENT.id,
    healthyExperiments: HEALTHY_EXPERIMENTS.map((d) => d.id),
    readTimeoutMs: clamp(timeLeft() - 20_000, 20_000, 120_000),
  }));
  if (!outcome) return;
  for (const c of outcome.checks) say(`check ${c.name}: ${c.ok ? 'ok' : 'FAILED'}: ${c.detail}`);
  say(`checks: done in ${secondsSince(t)} s; lost ${outcome.lost}, duplicated ${outcome.duplicated}`);
}

/**
 * Signed DEFINE commands, then a START for each, through the control service; throws unless it
 * ACCEPTED every one (a PENDING or REJECTED decision means no traffic may be sent for them).
 */
async function defineAndStart(context: CommandContext, signer: CommandSigner, definitions: ExperimentDefinition[], reason: string): Promise<CommandOutcome[]> {
  const refused = (o: CommandOutcome) => `${o.experimentId} ${o.action}: ${o.decision}: ${o.reason}`;
  const defined = await applyDefinitions(context, signer, definitions, reason, 60_000);
  const notDefined = defined.filter((o) => o.decision !== 'ACCEPTED');
  if (notDefined.length > 0) throw new Error(`the control service did not accept the definitions: ${notDefined.map(refused).join('; ')}`);
  for (const d of definitions) {
    const started = await moveExperiment(context, signer, d.id, 'START', reason, undefined, 60_000);
    if (started.decision !== 'ACCEPTED') throw new Error(`the control service did not start ${d.id}: ${refused(started)}`);
  }
  // Traffic only once the services that judge it act on the start (their tables follow
  // exp.state and exp.definitions on their own readers, a moment after the decision).
  const judges = (['ingest', 'aggregate', 'guard'] as const).map((name) => services.get(name)!);
  await Promise.all(
    definitions.flatMap((d) =>
      judges.flatMap((s) => [
        s.waitForLog(new RegExp(`"experimentId":"${d.id}","version":\\d+.*"msg":"definition: in force"`), 60_000),
        s.waitForLog(new RegExp(`"experimentId":"${d.id}","status":"RUNNING".*"msg":"experiment\\.state: in force"`), 60_000),
      ]),
    ),
  );
  return defined;
}

/** Runs a phase; if it throws, the failure is recorded and the drill goes on to what it can still check. */
async function phase<T>(name: string, work: () => Promise<T>): Promise<T | undefined> {
  try {
    return await work();
  } catch (err) {
    const message = (err as Error).message.split('\n').slice(0, 4).join(' | ');
    failures.push(`${name}: ${message}`);
    say(`${name}: FAILED: ${message}`);
    return undefined;
  }
}

/** After the faults: a new experiment with a broken split; the guard must halt it. */
async function guardPhase(context: () => CommandContext, signer: CommandSigner, kafka: () => ReturnType<typeof createKafka>, logger: Logger): Promise<void> {
  const [applied] = await defineAndStart(context(), signer, [BROKEN_EXPERIMENT], 'chaos drill: the broken experiment, after the faults');
  const started = Date.now();
  const haltTimeoutMs = clamp(timeLeft() - 110_000, 10_000, options.haltTimeoutMs);
  const halt = watchForHalt(kafka(), topicNames('').state, logger, BROKEN_EXPERIMENT.id, haltTimeoutMs);
  traffic?.addExperiment({ id: BROKEN_EXPERIMENT.id, variants: Object.entries(BROKEN_SPLIT).map(([id, share]) => ({ id, share })), metrics: ['purchase'], weight: HEALTHY_EXPERIMENTS.length });
  const status = await halt;
  const haltSeconds = status ? Math.round((status.since - started) / 100) / 10 : null;
  guardResult = { experimentId: BROKEN_EXPERIMENT.id, halted: status !== undefined, haltSeconds, reason: status?.reason ?? null };
  say(
    status
      ? `guard: ${BROKEN_EXPERIMENT.id} v${applied?.version} (70/30 against a planned 50/50) started after the faults; HALTED by ${status.by} ${haltSeconds} s after its first users: ${status.reason.slice(0, 120)}`
      : `guard: ${BROKEN_EXPERIMENT.id} (70/30 against a planned 50/50) NOT halted within ${haltTimeoutMs / 1000} s`,
  );
  // A little more traffic after the halt: a halted experiment is still counted.
  await sleep(options.quick ? 2_000 : 10_000);
}

async function waitForCatchUp(w: PipelineWatch, timeoutMs: number): Promise<NonNullable<DrillSummary['catchUp']>> {
  const started = Date.now();
  let caughtSince = 0;
  let last = await w.sample();
  while (Date.now() - started < timeoutMs) {
    last = await w.sample();
    const done = last.ok && PIPELINE_GROUPS.every((g) => (last.groups[g.service]?.lag ?? 1) === 0);
    if (done) {
      caughtSince ||= last.at;
      if (last.at - caughtSince >= 2_000) return { caughtUp: true, seconds: secondsSince(started), lag: describeLag(last) };
    } else caughtSince = 0;
    await sleep(500);
  }
  return { caughtUp: false, seconds: secondsSince(started), lag: last.ok ? describeLag(last) : `groups unreadable: ${last.error}` };
}

function onUnexpectedExit(exit: UnexpectedExit): void {
  unexpectedExits.push(exit);
  say(`SERVICE EXITED BY ITSELF: ${exit.service} (pid ${exit.pid}, ${exit.signal ?? `code ${exit.code}`}) at ${new Date(exit.at).toISOString().slice(11, 23)}; the drill does not restart it. Last log lines:\n    ${exit.lastLines.join('\n    ')}`);
}

function healthyTraffic(id: string): TrafficExperiment {
  const d = HEALTHY_EXPERIMENTS.find((e) => e.id === id)!;
  return { id, variants: d.variants.map((v) => ({ id: v.id, share: v.weight })), metrics: d.primaryMetrics.some((m) => m.name === 'clicks') ? ['clicks'] : ['purchase'], weight: 1 };
}

function trafficLine(t: TrafficGenerator): string {
  const s = t.stats();
  return `${s.generated.toLocaleString('en-US')} records sent, ${s.acked.toLocaleString('en-US')} acknowledged`;
}

function committedLine(sample: ReturnType<PipelineWatch['latest']>): string {
  if (!sample) return '(no sample)';
  return PIPELINE_GROUPS.map((g) => `${g.service} ${(sample.groups[g.service]?.committed ?? 0).toLocaleString('en-US')}`).join(', ');
}

function timeLeft(): number {
  return startedAt + options.budgetMs - Date.now();
}

function clamp(value: number, min: number, max: number): number {
  return Math.max(min, Math.min(max, value));
}

function secondsSince(t: number): number {
  return Math.round((Date.now() - t) / 100) / 10;
}

function killQuietly(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

function prepareDir(requested: string | undefined): string {
  if (!requested) return mkdtempSync(join(tmpdir(), 'expstream-chaos-'));
  const path = resolve(requested);
  if (existsSync(path) && readdirSync(path).length > 0) {
    process.stderr.write(`chaos: --dir ${path} exists and is not empty; the drill removes its directory afterwards, so give it a new or empty one\n`);
    process.exit(2);
  }
  mkdirSync(path, { recursive: true });
  return path;
}
