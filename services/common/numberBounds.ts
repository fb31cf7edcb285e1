/**
 * Numbers are bounded (DESIGN.md "Processing guarantees"): metric values beyond a magnitude
 * are dead-lettered at ingest, and no stage produces or stores a NaN or an infinity. JSON
 * turns both into null and ClickHouse turns a null into 0, so a non-finite number that got
 * through would not fail loudly: it would quietly become a wrong result. Hence one limit and
 * one way of finding the numbers that are not finite, used at every stage.
 *
 * Why 1e12 by default (config `ingest.maxAbsMetricValue`, services/common/config.ts). A variant's Σx² sums each user's squared total, so the limit must
 * leave room for a heavy user squared and then summed over every user: a user with a
 * million events at the limit has a total of 1e18, squared 1e36; over a billion users
 * Σx² is 1e45, some 263 orders of magnitude below the largest double (1.8e308). It also keeps
 * the values useful: a double holds 53 bits, so a value of 1e12 still resolves 1e-4 (cents of
 * ten billion in any currency, milliseconds of thirty years, bytes of a terabyte), and every
 * sum stays exact to about 1e-16 relative, far inside reanalysis' 1e-9.
 *
 * Why at most 1e15 when configured. 2^53 ≈ 9.007e15 is where consecutive integers stop being
 * distinct doubles: beyond it a metric could no longer count single units, so a larger limit
 * admits values the pipeline cannot add exactly. (The same heavy user at 1e15 gives Σx² of
 * 1e51: still finite, the precision is what runs out first.)
 */
export const MAX_CONFIGURABLE_ABS_METRIC_VALUE = 1e15;

/** True for every number that JSON, Avro-to-JSON and ClickHouse carry faithfully. */
export function allFinite(...values: number[]): boolean {
  for (const v of values) if (!Number.isFinite(v)) return false;
  return true;
}

/**
 * Where a JSON-like value (objects, arrays, numbers, strings, ...) holds a number that is not
 * finite, as dotted paths (`evidence.lower`, `rows.2.sum`); empty when there is none.
 */
export function nonFinitePaths(value: unknown, path = ''): string[] {
  if (typeof value === 'number') return Number.isFinite(value) ? [] : [path || '(value)'];
  if (typeof value !== 'object' || value === null || Buffer.isBuffer(value)) return [];
  const found: string[] = [];
  for (const [key, child] of Object.entries(value)) found.push(...nonFinitePaths(child, path ? `${path}.${key}` : key));
  return found;
}
