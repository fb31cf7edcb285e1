import { applyEvent, eventTimePolicy, type Outcome } from '../../services/aggregate/applyEvent.ts';
import { DeltaAccumulator, type ExperimentDelta } from '../../services/aggregate/deltaAccumulator.ts';
import { PartitionWatermark } from '../../services/aggregate/partitionWatermark.ts';
import type { UserState } from '../../services/aggregate/userState.ts';
import { UserTable } from '../../services/aggregate/userTable.ts';
import { OwnedPartition } from '../../services/common/changeloggedStore.ts';
import { CONFIG_DEFAULTS } from '../../services/common/config.ts';
import type { PipelineEvent } from '../../services/common/contracts/pipelineEvent.ts';
import type { PublishedDefinition } from '../../services/common/experimentDefinition.ts';
import { randomInt, seededRandom } from './random.ts';
import { loadRecord } from './restoreRecord.ts';

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
  let store = new OwnedPartition<UserState, UserTable>(new UserTable());
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
    store.table.flush();
    clock.sweep(store.table);
    result.peakHeld = Math.max(result.peakHeld, clock.held);
    result.deltas.push(...delta.deltas());
    start += size;
    if (options.restoreEvery && ++batches % options.restoreEvery === 0) {
      // Through the changelog records the table writes (format 2), into a fresh table, as a restore reads them.
      const restored = new UserTable();
      for (const [key] of store.entries()) loadRecord(restored, key, store.table.encoded(key));
      store = new OwnedPartition(restored);
      clock = PartitionWatermark.fromState(latenessMs, store.table);
    }
  }
  return result;
}
