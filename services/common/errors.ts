/**
 * One error base for the whole pipeline: a stable `code` to branch on, a `retriable`
 * flag for backoff decisions, a `cause`, and context (topic, partition, file, key, ...).
 * Codes live in ERROR_CODES so their uniqueness is checked in one place.
 */
export const ERROR_CODES = {
  CONFIG_INVALID: 'retriable=false: configuration failed validation',
  CONFIG_FILE_UNREADABLE: 'retriable=false: the configuration file could not be read or parsed',
  STACK_NOT_RUNNING: 'retriable=false: no endpoint configured and no local stack running',
  STACK_START_FAILED: 'retriable=false: a local stack component did not start',
  STACK_PORT_IN_USE: 'retriable=false: a port the local stack keeps is taken by another process',
  MIGRATION_FAILED: 'retriable=false: a ClickHouse migration failed',
  MIGRATION_CHANGED: 'retriable=false: an applied migration file was edited afterwards',
  MIGRATION_NAME_INVALID: 'retriable=false: a migration file name is not NNN_name.sql or a number repeats',
  REGISTRY_UNAVAILABLE: 'retriable=true: the schema registry did not answer or failed (5xx)',
  REGISTRY_REJECTED: 'retriable=false: the schema registry refused a request (4xx other than not-found)',
  EVENT_INVALID: 'retriable=false: an event does not satisfy its schema or the validation rules',
  INPUT_INVALID: 'retriable=false: a command-line input (file, flag) is not usable',
  SHUTDOWN_TIMEOUT: 'retriable=false: a component did not stop within its deadline',
  CONTROL_REFUSED: 'retriable=false: the control plane refused or could not decide a command',
  LIFECYCLE_ILLEGAL_MOVE: 'retriable=false: an experiment cannot make this move from its current state (services/common/experimentLifecycle.ts)',
  NON_FINITE_NUMBER: 'retriable=false: a number to be stored is NaN or infinite (the sink dead-letters the row instead of storing it as 0)',
  STORE_PARTITION_NOT_OWNED: 'retriable=false: a changelogged store was used for a partition this instance does not own (not restored, or dropped)',
  QUERY_REFUSED: 'retriable=false: an analyst query is not one read-only statement over the pipeline\'s database',
  INGEST_UNDECIDED: 'retriable=true: ingest did not decide every event `expctl produce --wait` sent within the wait',
  UNDECLARED_OUTPUT_TOPIC: 'retriable=false: a transactional loop was asked to write to a topic it did not declare in outputTopics (services/common/fencing.ts)',
  UNREADABLE_RECORD: 'retriable=false: a record on an internal topic does not decode; its topic\'s policy dead-letters it or stops the consumer (services/common/contracts/unreadablePolicy.ts)',
  RECORD_BATCH_MALFORMED: 'retriable=false: a fetched record batch is cut or its lengths disagree; the restore reading it fails and its incarnation is replaced (services/common/recordBatches.ts)',
  RECORD_FORMAT_UNSUPPORTED: 'retriable=false: a fetched record batch is not in format v2, the only one Kafka 4 writes (services/common/recordBatches.ts)',
  RECORD_COMPRESSION_UNSUPPORTED: 'retriable=false: a fetched record batch is compressed with a codec other than gzip; the pipeline writes its changelogs uncompressed (services/common/recordBatches.ts)',
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export type ErrorContext = Record<string, string | number | boolean | undefined>;

export class PipelineError extends Error {
  readonly code: ErrorCode;
  readonly retriable: boolean;
  readonly context: ErrorContext;

  constructor(code: ErrorCode, message: string, options: { cause?: unknown; retriable?: boolean; context?: ErrorContext } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'PipelineError';
    this.code = code;
    this.retriable = options.retriable ?? false;
    this.context = options.context ?? {};
  }
}

export function isPipelineError(err: unknown, code?: ErrorCode): err is PipelineError {
  return err instanceof PipelineError && (code === undefined || err.code === code);
}

/** The message of anything thrown, for logs and user-facing errors. */
export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
