import type { Kafka } from 'kafkajs';
import { Counter, Gauge, type Registry } from 'prom-client';
import { ChangeloggedStore, type PartitionStore } from '../common/changeloggedStore.ts';
import { CONFIG_DEFAULTS } from '../common/config.ts';
import { aggregates } from '../common/contracts/aggregates.ts';
import { anomalies } from '../common/contracts/anomalies.ts';
import { controlCommands } from '../common/contracts/controlCommands.ts';
import { UnreadableRecords } from '../common/contracts/unreadablePolicy.ts';
import { DefinitionsTable } from '../common/definitionsTable.ts';
import { experimentStatusTable } from '../common/experimentStatus.ts';
import { combineHealth } from '../common/health.ts';
import type { Keyring } from '../common/keyring.ts';
import type { Logger } from '../common/logger.ts';
import { LogRateLimiter } from '../common/logRateLimiter.ts';
import type { SchemaRegistryClient } from '../common/schemaRegistryClient.ts';
import { ensureTopics } from '../common/topicAdmin.ts';
import type { TopicNames } from '../common/topics.ts';
import { startTransactionalLoop, type InputRecord, type OutputRecord, type RunningLoop } from '../common/transactionalLoop.ts';
import { evaluateExperiment } from './evaluate.ts';
import { emptyExperimentState, experimentStateCodec, mergeDelta, type ExperimentState } from './experimentState.ts';
import { anomalyRecord, haltCommand, type Signer } from './guardOutputs.ts';

/**
 * The guard: exp.aggregates in (keyed by experiment, so one instance owns each experiment);
 * per-experiment totals kept in memory and changelogged; every experiment touched by a batch
 * is evaluated once for that batch (a busy experiment cannot starve the others: a batch is
 * bounded and each experiment costs one evaluation), and every `punctuateMs` every experiment
 * of each owned partition is evaluated at the wall-clock time (the loop's punctuation), so an
 * experiment whose traffic stopped entirely is still judged (NO_TRAFFIC). New incidents go to
 * exp.anomalies, and the halting ones as signed HALT commands to exp.control, in the same
 * transaction as the state that records them (a batch's or a punctuation's), so an incident
 * is raised, and halted, once even across crashes and restarts.
 * Only running experiments are evaluated: a halted one (by the guard or an operator) is
 * counted on but raises no further signal until it is resumed, and a draft, concluded or
 * archived one has nothing to watch. Definitions count only if the control service
 * published them (signed with a control key of the keyring).
 */
export interface GuardOptions {
  kafka: Kafka;
  registry: SchemaRegistryClient;
  topics: TopicNames;
  groupId: string;
  signer: Signer;
  /** Whose signatures make a definition genuine. */
  keyring: Keyring;
  sessionTimeoutMs?: number;
  /** See config `health.stallMs`. */
  stallMs?: number;
  /** See config `guard.punctuateMs`. */
  punctuateMs?: number;
  metrics: Registry;
  logger: Logger;
}

export async function startGuard(options: GuardOptions): Promise<RunningLoop> {
  const { kafka, topics } = options;
  const log = options.logger.child({ module: 'guard' });
  await ensureTopics(kafka, topics, ['aggregates', 'anomalies', 'control', 'definitions', 'state', 'guardChangelog']);
  const anomalyOut = await anomalies.bind(options.registry, topics);
  const commandOut = await controlCommands.bind(options.registry, topics);
  const unreadable = new UnreadableRecords(options.metrics, log);
  const definitions = new DefinitionsTable(kafka, topics.definitions, log, { keyring: options.keyring, metrics: options.metrics });
  await definitions.start();
  // Only running experiments are acted on; a halted one keeps being counted all the same.
  const statuses = experimentStatusTable(kafka, topics.state, log, { metrics: options.metrics });
  await statuses.start();
  const signals = new Counter({ name: 'guard_signals_total', help: 'Anomaly signals raised, by type and whether they halted', labelNames: ['type', 'halted'], registers: [options.metrics] });
  const lag = new Gauge({ name: 'guard_consumer_lag', help: 'Aggregate deltas not yet evaluated, by partition', labelNames: ['partition'], registers: [options.metrics] });
  // Numbers that are not finite never reach the totals or the evidence (see mergeDelta, evaluateExperiment).
  const skippedDeltas = new Counter({ name: 'guard_delta_parts_skipped_total', help: 'Parts of aggregate deltas left out of the totals because a number was not finite, by reason', labelNames: ['reason'], registers: [options.metrics] });
  const withheldSignals = new Counter({ name: 'guard_signals_withheld_total', help: 'Signals not raised because their evidence held a number that is not finite, by type', labelNames: ['type'], registers: [options.metrics] });
  const numbersLog = new LogRateLimiter(log);
  const punctuations = new Counter({ name: 'guard_punctuations_total', help: 'Wall-clock evaluations of a partition\'s running experiments committed (see config guard.punctuateMs)', registers: [options.metrics] });
  const states = new ChangeloggedStore({ kafka, changelogTopic: topics.guardChangelog, codec: experimentStateCodec, logger: log, logEvent: 'guard.state_restored' });

  const process = async (records: InputRecord[]): Promise<OutputRecord[]> => {
    const partition = records[0]!.partition;
    const experiments = states.partition(partition);
    const touched = new Set<string>();
    for (const record of records) {
      const decoded = aggregates.decode(record.message.value);
      if (!decoded.ok) {
        unreadable.handle('aggregates', { topic: record.topic, partition, offset: record.message.offset }, decoded);
        continue;
      }
      const delta = decoded.value;
      // Changelogged at commit as it is then, incidents raised below included.
      const state = experiments.get(delta.experimentId) ?? emptyExperimentState(delta.experimentId);
      experiments.set(delta.experimentId, state);
      for (const part of mergeDelta(state, delta)) {
        skippedDeltas.inc({ reason: part.reason });
        numbersLog.warn(part.reason, { partition, offset: record.message.offset, experimentId: delta.experimentId, ...part }, 'guard.delta_skipped: part of an aggregate delta is not finite; the totals leave it out');
      }
      touched.add(delta.experimentId);
    }
    const now = Date.now();
    return [...touched].flatMap((experimentId) => raiseSignals(experiments, experimentId, now));
  };

  /**
   * The new signals of one experiment at wall-clock `now`, as output records, with their
   * incidents recorded in its state (changelogged with them). Only a running experiment with a
   * published definition is judged.
   */
  const raiseSignals = (experiments: PartitionStore<ExperimentState>, experimentId: string, now: number): OutputRecord[] => {
    const state = experiments.get(experimentId);
    const published = definitions.get(experimentId);
    if (!state || !published || statuses.get(experimentId)?.status !== 'RUNNING') return [];
    const withheld = (signal: { type: string; incident: string }, nonFinite: string[]) => {
      withheldSignals.inc({ type: signal.type });
      numbersLog.warn(`withheld:${signal.type}`, { experimentId, incident: signal.incident, nonFinite }, 'guard.signal_withheld: its evidence holds a number that is not finite');
    };
    const outputs: OutputRecord[] = [];
    for (const signal of evaluateExperiment(state, published, withheld, now)) {
      state.incidents[signal.incident] = { raisedAt: now, halted: signal.halt, definitionVersion: published.version };
      outputs.push({ topic: anomalyOut.topic, message: anomalyOut.message(anomalyRecord(experimentId, published.version, signal, now)) });
      if (signal.halt) outputs.push({ topic: commandOut.topic, message: commandOut.message(haltCommand(experimentId, published.version, signal, options.signer, now)) });
      signals.inc({ type: signal.type, halted: String(signal.halt) });
      log.warn({ experimentId, type: signal.type, halt: signal.halt, reason: signal.reason }, 'guard.signal');
    }
    // The incidents just recorded go to the changelog in the same transaction as the signals.
    if (outputs.length > 0) experiments.set(experimentId, state);
    return outputs;
  };

  const loop = await startTransactionalLoop({
    kafka,
    groupId: options.groupId,
    topics: [topics.aggregates],
    outputTopics: [anomalyOut.topic, commandOut.topic],
    transactionalIdPrefix: options.groupId,
    logger: log,
    // Small batches: a decision waits for its batch to commit.
    maxBatchRecords: 500,
    ...(options.sessionTimeoutMs ? { sessionTimeoutMs: options.sessionTimeoutMs } : {}),
    ...(options.stallMs ? { stallMs: options.stallMs } : {}),
    onLag: ({ partition }, n) => (n === undefined ? lag.remove({ partition: String(partition) }) : lag.set({ partition: String(partition) }, n)),
    stores: [states],
    process,
    // Experiments without deltas are judged too: NO_TRAFFIC is about exactly those.
    punctuate: {
      everyMs: options.punctuateMs ?? CONFIG_DEFAULTS.guard.punctuateMs,
      run: async (partition, now) => {
        const experiments = states.partition(partition);
        return [...experiments.entries()].flatMap(([experimentId]) => raiseSignals(experiments, experimentId, now));
      },
      onDone: () => punctuations.inc(),
    },
  });
  log.info({ groupId: options.groupId, input: topics.aggregates, outputs: [topics.anomalies, topics.control] }, 'guard running');
  return {
    ...combineHealth({ loop, definitions, statuses }),
    stop: async () => {
      await loop.stop();
      await definitions.stop();
      await statuses.stop();
      numbersLog.flush();
      unreadable.flush();
    },
  };
}
