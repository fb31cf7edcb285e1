import { applyEvent, eventTimePolicy, type Outcome } from '../../services/aggregate/applyEvent.ts';
import { DeltaAccumulator, type ExperimentDelta } from '../../services/aggregate/deltaAccumulator.ts';
import { PartitionWatermark } from '../../services/aggregate/partitionWatermark.ts';
import { decodeUserState, encodeUserState, type UserState } from '../../services/aggregate/userState.ts';
import type { PartitionStore } from '../../services/common/changeloggedStore.ts';
import { CONFIG_DEFAULTS } from '../../services/common/config.ts';
import type { PipelineEvent } from '../../services/common/contracts/pipelineEvent.ts';
import type { PublishedDefinition } from '../../services/common/experimentDefinition.ts';
import { randomInt, seededRandom } from './random.ts';

/** An in-memory partition store (the changelogged store without Kafka), for pure tests. */
export class MemoryPartition<V> implements PartitionStore<V> {
  readonly values = new Map<string, V>();
  get(key: string): V | undefined {
    return this.values.get(key);
  }
  set(key: string, value: V): void {
    this.values.set(key, value);
  }
  delete(key: string): void {
    this.values.delete(key);
  }
  get size(): number {
    return this.values.size;
  }
  entries(): IterableIterator<[string, V]> {
    return this.values.entries();
  }
}

export interface ReplayResult {
  deltas: ExperimentDelta[];
  outcomes: Map<Outcome | 'late', number>;
  /** Most metric events held at once (after a batch's sweep). */
  peakHeld: number;
}

/**
 * One partition of exp.events through the aggregator's own code, as aggregateService drives it:
 * the partition's watermark decides late or taken, applyEvent applies, the sweep lets held
 * events go after each batch (of random size). Every `restoreEvery` batches the state goes
 * through the changelog encoding and the clock is rebuilt from it, as after a restore.
 */
export function replayPartition(events: PipelineEvent[], definitions: PublishedDefinition[], options: { seed?: number; latenessMs?: number; restoreEvery?: number; maxBatch?: number } = {}): ReplayResult {
  const byId = new Map(definitions.map((d) => [d.experimentId, d]));
  const metrics = new Set(definitions.flatMap(({ definition: d }) => [...d.primaryMetrics, ...d.guardrailMetrics].flatMap((m) => (m.type === 'ratio' ? [m.numerator, m.denominator] : [m.name]))));
  const latenessMs = options.latenessMs ?? CONFIG_DEFAULTS.aggregate.latenessMs;
  const policy = eventTimePolicy({ latenessMs }, (m) => metrics.has(m));
  const random = seededRandom(options.seed ?? 11);
  let store = new MemoryPartition<UserState>();
  let clock = new PartitionWatermark(latenessMs);
  const result: ReplayResult = { deltas: [], outcomes: new Map(), peakHeld: 0 };
  const count = (o: Outcome | 'late') => result.outcomes.set(o, (result.outcomes.get(o) ?? 0) + 1);
  let batches = 0;
  for (let start = 0; start < events.length; ) {
    const size = 1 + randomInt(random, options.maxBatch ?? 2_000);
    const delta = new DeltaAccumulator();
    for (const event of events.slice(start, start + size)) {
      const outcomes = clock.take(store, event, (user, watermark) => applyEvent(user, event, (id) => byId.get(id), delta, policy, undefined, watermark));
      if (outcomes === 'late') count('late');
      else outcomes.forEach(count);
    }
    clock.sweep(store);
    result.peakHeld = Math.max(result.peakHeld, clock.held);
    result.deltas.push(...delta.deltas());
    start += size;
    if (options.restoreEvery && ++batches % options.restoreEvery === 0) {
      const restored = new MemoryPartition<UserState>();
      for (const [key, user] of store.entries()) restored.set(key, decodeUserState(encodeUserState(user)));
      store = restored;
      clock = PartitionWatermark.fromState(latenessMs, store);
    }
  }
  return result;
}
