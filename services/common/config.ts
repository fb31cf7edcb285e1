import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { availableParallelism } from 'node:os';
import { z } from 'zod';
import { PipelineError } from './errors.ts';
import { LOG_LEVELS } from './logger.ts';
import { MAX_CONFIGURABLE_ABS_METRIC_VALUE } from './numberBounds.ts';

/**
 * One typed configuration, validated once at start: defaults < config file < environment.
 * Unknown keys are refused; an error names the bad key and, when it came from the
 * environment, the variable. The result is frozen.
 *
 * The schema below is the one place a configurable default is written: services whose options
 * may be left out (in tests, in the demo) fall back to CONFIG_DEFAULTS, never to a literal of
 * their own.
 */

const hostPort = z
  .string()
  .trim()
  .regex(/^[A-Za-z0-9.\-_]+:\d{1,5}$/, 'expected host:port, e.g. 127.0.0.1:9092')
  .refine((s) => !/:\d+$/.test(s) || Number(s.split(':').pop()) <= 65535, 'port must be at most 65535');

const httpUrl = z
  .string()
  .trim()
  .refine((s) => URL.canParse(s) && /^https?:$/.test(new URL(s).protocol), 'expected an http(s) URL, e.g. http://127.0.0.1:8081');

const ConfigSchema = z.strictObject({
  kafka: z
    .strictObject({
      /** Absent: use the local stack's broker (`expctl stack up`). */
      brokers: z.array(hostPort).min(1, 'at least one broker').optional(),
      clientId: z.string().regex(/^[A-Za-z0-9._-]{1,100}$/, 'letters, digits, dot, dash, underscore').default('expstream'),
      /** Prepended to every topic name, e.g. `staging.` gives `staging.exp.events`. */
      topicPrefix: z.string().regex(/^[A-Za-z0-9._-]{0,100}$/, 'letters, digits, dot, dash, underscore').default(''),
      /**
       * How long the group waits for a silent consumer before reassigning its partitions: the
       * pause after a crash. The broker's floor is 6 s by default; heartbeats go every third.
       */
      sessionTimeoutMs: z.coerce.number().int().min(1_000).max(300_000).default(10_000),
    })
    .prefault({}),
  schemaRegistry: z
    .strictObject({
      /** Absent: use the local stack's registry. */
      url: httpUrl.optional(),
    })
    .prefault({}),
  clickhouse: z
    .strictObject({
      /** Absent: the in-process chDB engine on `dataDir`. */
      url: httpUrl.optional(),
      username: z.string().default('default'),
      password: z.string().default(''),
      database: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,63}$/, 'a ClickHouse identifier').default('expstream'),
      /**
       * The read-only user `expctl query` connects to a server as (infra/clickhouse/readonly-user.sql
       * creates it); required for `expctl query` with `url`, unused by the embedded engine.
       */
      queryUser: z.string().min(1).optional(),
      queryPassword: z.string().default(''),
      /** chDB data directory (one process at a time may open it); default `<stack.dir>/chdb`. */
      dataDir: z.string().min(1).optional(),
    })
    .prefault({}),
  stack: z
    .strictObject({
      /** Where the local stack keeps its state, data and logs. */
      dir: z.string().min(1).default('.stack'),
      /** Where fetched Kafka jars are cached (git-ignored). */
      cacheDir: z.string().min(1).default('.cache'),
      /** Apache Kafka version for the local broker; default: the tested one. */
      kafkaVersion: z.string().regex(/^\d+\.\d+\.\d+$/, 'a version like 3.9.1').optional(),
    })
    .prefault({}),
  log: z.strictObject({ level: z.enum(LOG_LEVELS).default('info') }).prefault({}),
  /** Names this process among the instances of its service: part of its stable transactional id. */
  instanceId: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, 'letters, digits, dot, dash, underscore').default('0'),
  metrics: z
    .strictObject({
      host: z.string().min(1).default('127.0.0.1'),
      /** Port of `/metrics`; 0 picks a free one (logged at start). */
      port: z.coerce.number().int().min(0).max(65535).default(0),
    })
    .prefault({}),
  health: z
    .strictObject({
      /**
       * `/healthz` fails once a service's loop has been down, or has had input waiting without
       * moving, for this long; a loop stuck four times as long is replaced. Longer than a
       * broker restart or a rebalance, so those alone do not flap it.
       */
      stallMs: z.coerce.number().int().min(1_000).max(3_600_000).default(30_000),
    })
    .prefault({}),
  privacy: z
    .strictObject({
      /** Key of the HMAC that pseudonymizes user ids before they reach ClickHouse; never stored there. */
      pseudonymKey: z.string().min(16, 'at least 16 characters').optional(),
    })
    .prefault({}),
  sink: z
    .strictObject({
      /**
       * Pause between a batch's inserts and its offset commit. 0 in production; a chaos drill
       * (or the crash test) widens the window in which a crash leaves rows stored but their
       * offsets uncommitted, to show they are not stored twice.
       */
      commitDelayMs: z.coerce.number().int().min(0).max(60_000).default(0),
    })
    .prefault({}),
  guard: z
    .strictObject({
      /** The principal the guard signs HALT commands as (its public key and roles are in the keyring). */
      principal: z.string().regex(/^[A-Za-z0-9._@-]{1,100}$/, 'letters, digits, dot, dash, underscore, @').default('guardian'),
      /** PKCS#8 PEM file of the guard's Ed25519 private key (`expctl keys generate` makes one). */
      keyFile: z.string().min(1).optional(),
      /**
       * How often (wall-clock ms) the guard evaluates every running experiment of its
       * partitions without waiting for input: how NO_TRAFFIC is raised for an experiment that
       * gets no deltas at all, within this long of its `noTrafficMinutes` running out.
       */
      punctuateMs: z.coerce.number().int().min(100).max(3_600_000).default(60_000),
    })
    .prefault({}),
  aggregate: z
    .strictObject({
      /**
       * How far (in event time) an event may arrive behind its partition's stream time (the
       * newest event time the aggregator has taken on that partition of exp.events) and still
       * be taken exactly: the aggregator holds each user's metric events this long so that an
       * exposure arriving after them (the two raw topics are read independently and either can
       * run minutes behind) still counts them, and an earlier exposure still moves the user.
       * An event later than this is not taken; it is counted and reported as late.
       */
      latenessMs: z.coerce.number().int().min(0).max(24 * 3_600_000).default(600_000),
      /**
       * Worker threads a restore of the aggregator's state may use besides its own (one per
       * core by default); 0 restores every partition on the aggregator's thread. Partitions of
       * fewer than `restoreThreadMinRecords` changelog records are always restored there.
       */
      restoreThreads: z.coerce.number().int().min(0).max(64).default(() => availableParallelism()),
      restoreThreadMinRecords: z.coerce.number().int().min(0).max(1_000_000_000).default(50_000),
    })
    .prefault({}),
  control: z
    .strictObject({
      /**
       * JSON keyring: principals (public keys, roles) and hashed admin API tokens. Required by
       * the control service, and by every service that acts on definitions (ingest when it
       * checks experiments, aggregate, guard, sink, expctl reanalyze): they accept only
       * definitions signed by a principal of the keyring holding the control role.
       */
      keyringFile: z.string().min(1).optional(),
      /** The principal the control service signs the definitions it publishes as (role control in the keyring). */
      principal: z.string().regex(/^[A-Za-z0-9._@-]{1,100}$/, 'letters, digits, dot, dash, underscore, @').default('control'),
      /** PKCS#8 PEM file of that principal's Ed25519 private key. Required by the control service. */
      keyFile: z.string().min(1).optional(),
      /** Oldest command accepted, by its issuedAt. */
      maxCommandAgeMs: z.coerce.number().int().min(1_000).max(24 * 3_600_000).default(5 * 60_000),
      /** Clock skew tolerated for commands dated ahead. */
      maxClockSkewMs: z.coerce.number().int().min(0).max(3_600_000).default(30_000),
      /** The admin API's address; port 0 picks a free one (logged at start). */
      apiHost: z.string().min(1).default('127.0.0.1'),
      apiPort: z.coerce.number().int().min(0).max(65535).default(8090),
      /** The principal the admin API signs commands as, on behalf of the authenticated caller (needs the operator role; the experimenter role too for define, start, conclude and archive). */
      apiPrincipal: z.string().regex(/^[A-Za-z0-9._@-]{1,100}$/, 'letters, digits, dot, dash, underscore, @').default('admin-api'),
      /** PKCS#8 PEM file of that principal's private key; without it the API serves reads only. */
      apiKeyFile: z.string().min(1).optional(),
      /** Failed authentications per client address within a minute before its further failures get 429 (a valid token is always served). */
      authFailuresAllowed: z.coerce.number().int().min(1).max(1_000).default(5),
      /** A caller's refused halts and resumes within this window go into the audit log as one record and one summary with the count. */
      refusalAuditWindowMs: z.coerce.number().int().min(1_000).max(3_600_000).default(60_000),
      /** Audit records the admin API keeps in memory; older pages of GET /audit are read back from exp.audit. */
      auditKept: z.coerce.number().int().min(1).max(1_000_000).default(10_000),
    })
    .prefault({}),
  notify: z
    .strictObject({
      /** JSON file of webhooks (services/notify/webhookConfig.ts); without it the notifier refuses to start. */
      webhooksFile: z.string().min(1).optional(),
      /** JSON-lines file each delivery attempt and outcome is appended to. */
      deliveryLog: z.string().min(1).default('.stack/notify-deliveries.jsonl'),
      /** Attempts per notification and webhook before it is given up (recorded as GAVE_UP). */
      maxAttempts: z.coerce.number().int().min(1).max(100).default(12),
      /** First retry after this long; each next one waits twice as long (±20 %), up to retryMaxMs. */
      retryBaseMs: z.coerce.number().int().min(10).max(600_000).default(1_000),
      retryMaxMs: z.coerce.number().int().min(10).max(3_600_000).default(5 * 60_000),
      /** One HTTP attempt's deadline. */
      timeoutMs: z.coerce.number().int().min(100).max(60_000).default(5_000),
      /** Where a new consumer group starts: 'latest' (only what happens from now) or 'earliest' (every record kept). */
      startFrom: z.enum(['latest', 'earliest']).default('latest'),
    })
    .prefault({}),
  ingest: z
    .strictObject({
      /** Larger raw records go to the DLQ unread (with this many of their bytes); below the broker's 1 MiB record limit. */
      maxPayloadBytes: z.coerce.number().int().min(64).max(768 * 1024).default(256 * 1024),
      /** How far event time may run ahead of ingest time. */
      maxFutureSkewMs: z.coerce.number().int().min(0).default(5 * 60_000),
      /** How far event time may lag behind ingest time. */
      maxEventAgeMs: z.coerce.number().int().min(60_000).default(30 * 24 * 3_600_000),
      /** Longest id (user, event, experiment, variant, metric name) accepted. */
      maxIdLength: z.coerce.number().int().min(1).max(65_536).default(256),
      /**
       * Metric values of a larger magnitude are dead-lettered (VALUE_OUT_OF_RANGE). The default,
       * 1e12, keeps Σx² of a million events at the limit per user over a billion users near
       * 1e45, far below the largest double, with values resolved to 1e-4; at most 1e15, where
       * doubles stop resolving single units. The reasoning in full: services/common/numberBounds.ts.
       */
      maxAbsMetricValue: z.coerce
        .number()
        .positive()
        .max(MAX_CONFIGURABLE_ABS_METRIC_VALUE, 'at most 1e15: beyond 2^53 doubles no longer resolve single units')
        .default(1e12),
      /** Dead-letter exposures of undefined experiments or variants (UNKNOWN_EXPERIMENT, UNKNOWN_VARIANT). */
      checkExperiments: z.preprocess((v) => (v === 'true' ? true : v === 'false' ? false : v), z.boolean()).default(true),
      /**
       * Event-time alignment of the raw inputs (services/ingest/eventTimeAlignment.ts): a raw
       * partition's records more than this far (event time) ahead of the earliest waiting head
       * of the others are held back...
       */
      alignSlackMs: z.coerce.number().int().min(0).max(3_600_000).default(120_000),
      /** ... for at most this long (wall clock); 0 turns the alignment off. */
      alignMaxWaitMs: z.coerce.number().int().min(0).max(60_000).default(2_000),
    })
    .prefault({}),
});

type ParsedConfig = z.infer<typeof ConfigSchema>;

/** Every default of the schema (what an empty configuration parses to), frozen. */
export const CONFIG_DEFAULTS: Readonly<ParsedConfig> = deepFreeze(ConfigSchema.parse({}));
export type Config = Readonly<
  Omit<ParsedConfig, 'clickhouse'> & { clickhouse: ParsedConfig['clickhouse'] & { dataDir: string } }
>;

/** Environment variables and the config keys they set. */
export const ENV_KEYS = {
  KAFKA_BROKERS: 'kafka.brokers',
  KAFKA_CLIENT_ID: 'kafka.clientId',
  KAFKA_SESSION_TIMEOUT_MS: 'kafka.sessionTimeoutMs',
  EXP_TOPIC_PREFIX: 'kafka.topicPrefix',
  SCHEMA_REGISTRY_URL: 'schemaRegistry.url',
  CLICKHOUSE_URL: 'clickhouse.url',
  CLICKHOUSE_USER: 'clickhouse.username',
  CLICKHOUSE_PASSWORD: 'clickhouse.password',
  CLICKHOUSE_DATABASE: 'clickhouse.database',
  CLICKHOUSE_QUERY_USER: 'clickhouse.queryUser',
  CLICKHOUSE_QUERY_PASSWORD: 'clickhouse.queryPassword',
  CHDB_PATH: 'clickhouse.dataDir',
  EXP_STACK_DIR: 'stack.dir',
  EXP_CACHE_DIR: 'stack.cacheDir',
  KAFKA_VERSION: 'stack.kafkaVersion',
  LOG_LEVEL: 'log.level',
  EXP_INSTANCE_ID: 'instanceId',
  METRICS_HOST: 'metrics.host',
  METRICS_PORT: 'metrics.port',
  HEALTH_STALL_MS: 'health.stallMs',
  PSEUDONYM_KEY: 'privacy.pseudonymKey',
  SINK_COMMIT_DELAY_MS: 'sink.commitDelayMs',
  GUARD_PRINCIPAL: 'guard.principal',
  GUARD_KEY_FILE: 'guard.keyFile',
  GUARD_PUNCTUATE_MS: 'guard.punctuateMs',
  AGGREGATE_LATENESS_MS: 'aggregate.latenessMs',
  AGGREGATE_RESTORE_THREADS: 'aggregate.restoreThreads',
  AGGREGATE_RESTORE_THREAD_MIN_RECORDS: 'aggregate.restoreThreadMinRecords',
  KEYRING_FILE: 'control.keyringFile',
  CONTROL_PRINCIPAL: 'control.principal',
  CONTROL_KEY_FILE: 'control.keyFile',
  CONTROL_MAX_COMMAND_AGE_MS: 'control.maxCommandAgeMs',
  CONTROL_MAX_CLOCK_SKEW_MS: 'control.maxClockSkewMs',
  ADMIN_API_HOST: 'control.apiHost',
  ADMIN_API_PORT: 'control.apiPort',
  ADMIN_API_PRINCIPAL: 'control.apiPrincipal',
  ADMIN_API_KEY_FILE: 'control.apiKeyFile',
  ADMIN_AUTH_FAILURES_ALLOWED: 'control.authFailuresAllowed',
  ADMIN_REFUSAL_AUDIT_WINDOW_MS: 'control.refusalAuditWindowMs',
  ADMIN_AUDIT_KEPT: 'control.auditKept',
  NOTIFY_WEBHOOKS_FILE: 'notify.webhooksFile',
  NOTIFY_DELIVERY_LOG: 'notify.deliveryLog',
  NOTIFY_MAX_ATTEMPTS: 'notify.maxAttempts',
  NOTIFY_RETRY_BASE_MS: 'notify.retryBaseMs',
  NOTIFY_RETRY_MAX_MS: 'notify.retryMaxMs',
  NOTIFY_TIMEOUT_MS: 'notify.timeoutMs',
  NOTIFY_START_FROM: 'notify.startFrom',
  INGEST_MAX_PAYLOAD_BYTES: 'ingest.maxPayloadBytes',
  INGEST_MAX_FUTURE_SKEW_MS: 'ingest.maxFutureSkewMs',
  INGEST_MAX_EVENT_AGE_MS: 'ingest.maxEventAgeMs',
  INGEST_MAX_ID_LENGTH: 'ingest.maxIdLength',
  INGEST_MAX_ABS_VALUE: 'ingest.maxAbsMetricValue',
  INGEST_CHECK_EXPERIMENTS: 'ingest.checkExperiments',
  INGEST_ALIGN_SLACK_MS: 'ingest.alignSlackMs',
  INGEST_ALIGN_MAX_WAIT_MS: 'ingest.alignMaxWaitMs',
} as const;

/** The variable naming a config file (JSON with the keys above). */
export const CONFIG_FILE_ENV = 'EXP_CONFIG';

type Env = Record<string, string | undefined>;

export function loadConfig(options: { env?: Env; file?: string; cwd?: string } = {}): Config {
  const env = options.env ?? process.env;
  const cwd = options.cwd ?? process.cwd();
  const file = options.file ?? nonEmpty(env[CONFIG_FILE_ENV]);
  const fromFile = file === undefined ? {} : readConfigFile(resolve(cwd, file));
  const merged = structuredClone(fromFile) as Record<string, unknown>;
  const envSource = new Map<string, string>();
  for (const [name, key] of Object.entries(ENV_KEYS)) {
    const raw = nonEmpty(env[name]);
    if (raw === undefined) continue;
    const value = key === 'kafka.brokers' ? raw.split(',').map((s) => s.trim()).filter(Boolean) : raw;
    setPath(merged, key, value);
    envSource.set(key, name);
  }
  const parsed = ConfigSchema.safeParse(merged);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => {
      const key = issue.path.map(String).join('.') || '(root)';
      const topKey = issue.path.slice(0, 2).map(String).join('.');
      const origin = envSource.has(topKey) ? ` (from ${envSource.get(topKey)})` : file ? ` (from ${file})` : '';
      const unknown = issue.code === 'unrecognized_keys' ? `: unknown key(s) ${issue.keys.join(', ')}` : `: ${issue.message}`;
      return `${key}${origin}${unknown}`;
    });
    throw new PipelineError('CONFIG_INVALID', `invalid configuration: ${problems.join('; ')}`, { context: { file } });
  }
  const c = parsed.data;
  const stackDir = resolve(cwd, c.stack.dir);
  return deepFreeze({
    ...c,
    stack: { ...c.stack, dir: stackDir, cacheDir: resolve(cwd, c.stack.cacheDir) },
    clickhouse: { ...c.clickhouse, dataDir: resolve(cwd, c.clickhouse.dataDir ?? resolve(stackDir, 'chdb')) },
  });
}

function readConfigFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (cause) {
    throw new PipelineError('CONFIG_FILE_UNREADABLE', `cannot read config file ${path}: ${(cause as Error).message}`, { cause, context: { file: path } });
  }
  try {
    const value: unknown = JSON.parse(text);
    if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error('the top level must be an object');
    return value as Record<string, unknown>;
  } catch (cause) {
    throw new PipelineError('CONFIG_FILE_UNREADABLE', `config file ${path} is not valid JSON: ${(cause as Error).message}`, { cause, context: { file: path } });
  }
}

function setPath(target: Record<string, unknown>, dotted: string, value: unknown): void {
  const parts = dotted.split('.');
  let node = target;
  for (const part of parts.slice(0, -1)) {
    const next = node[part];
    if (typeof next !== 'object' || next === null || Array.isArray(next)) node[part] = {};
    node = node[part] as Record<string, unknown>;
  }
  node[parts[parts.length - 1]!] = value;
}

function nonEmpty(s: string | undefined): string | undefined {
  return s === undefined || s.trim() === '' ? undefined : s;
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}
