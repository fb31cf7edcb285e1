import { allMetrics, metricEventNames, type ExperimentDefinition } from '../common/experimentDefinition.ts';
import { denominatorKey, totalKey } from './userState.ts';

/**
 * The strings the experiments' definitions put in per-user state (internedIds.ts): experiment
 * and variant ids, total keys, the metric events held. Interned before a restore, in this
 * order (by experiment id, then as each definition lists them), and handed to the restore's
 * worker threads, they are numbered alike on every thread: a table a worker hands back then
 * needs no renumbering (a walk over every user: ~70 ms of the thread restoring two partitions
 * of a million users). Strings of no current definition are still numbered as they are met.
 */
export function definitionStrings(definitions: readonly ExperimentDefinition[]): string[] {
  const strings = new Set<string>();
  for (const d of [...definitions].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))) {
    strings.add(d.id);
    for (const variant of d.variants) strings.add(variant.id);
    for (const metric of allMetrics(d)) {
      strings.add(totalKey(d.id, metric.name));
      if (metric.type === 'ratio') strings.add(denominatorKey(d.id, metric.name));
      for (const name of metricEventNames(metric)) strings.add(name);
    }
  }
  return [...strings];
}
