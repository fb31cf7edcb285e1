/**
 * The engine settings every analyst query runs under, on either engine: the embedded one
 * gets them at connect time together with `readonly = 1` (so no statement can change them
 * afterwards); a server gets them with each query and bounds them with the settings profile
 * of infra/clickhouse/readonly-user.sql, whose values and constraints must agree with these
 * (test/integration/clickhouse-readonly-user.test.ts checks that they do).
 */

export interface QueryLimits {
  /** More result rows than this fail the query (TOO_MANY_ROWS_OR_BYTES). */
  maxRows: number;
  /** The engine stops the query after this long (TIMEOUT_EXCEEDED). */
  timeoutSeconds: number;
  /** The engine stops the query when it would use more memory than this (MEMORY_LIMIT_EXCEEDED). */
  maxMemoryMiB: number;
}

/** The defaults of `expctl query`'s flags: limits of one command's run, not part of the services' configuration (config.ts); written only here. */
export const DEFAULT_QUERY_LIMITS: Readonly<QueryLimits> = Object.freeze({ maxRows: 10_000, timeoutSeconds: 30, maxMemoryMiB: 1024 });

/** The most a caller may ask for: the MAX of the server profile's constraints. */
export const QUERY_LIMIT_CEILINGS: Readonly<QueryLimits> = Object.freeze({ maxRows: 1_000_000, timeoutSeconds: 600, maxMemoryMiB: 4096 });

/** Results are materialized in the CLI; wider than this is refused by the engine. */
export const MAX_RESULT_BYTES = 256 * 1024 * 1024;

export type SettingValue = string | number;

/** Every setting an analyst query runs with, except `readonly` itself (see above). */
export function analystQuerySettings(limits: QueryLimits): Record<string, SettingValue> {
  return {
    max_result_rows: limits.maxRows,
    max_result_bytes: MAX_RESULT_BYTES,
    result_overflow_mode: 'throw',
    max_execution_time: limits.timeoutSeconds,
    timeout_overflow_mode: 'throw',
    max_memory_usage: limits.maxMemoryMiB * 1024 * 1024,
    // A sort, GROUP BY or join that outgrows memory fails instead of spilling to the server's disk.
    max_bytes_ratio_before_external_group_by: 0,
    max_bytes_ratio_before_external_sort: 0,
    max_bytes_ratio_before_external_join: 0,
    allow_introspection_functions: 0,
    // 64-bit integers as JSON strings, as the rest of the project reads them (see common/clickhouse.ts).
    output_format_json_quote_64bit_integers: 1,
  };
}

/** Refuses limits outside 1..ceiling; the flags are checked with this before anything opens. */
export function limitProblem(name: keyof QueryLimits, value: number): string | undefined {
  const ceiling = QUERY_LIMIT_CEILINGS[name];
  if (!Number.isSafeInteger(value) || value < 1) return 'must be a positive integer';
  if (value > ceiling) return `must be at most ${ceiling} (the read-only profile's ceiling)`;
  return undefined;
}
