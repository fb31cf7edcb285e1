import { closeSync, openSync, readSync } from 'node:fs';
import { extname } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { PipelineError } from './errors.ts';

/**
 * The experiment definition: one schema for the CLI (apply, plan), the aggregator, the
 * guard and the control plane. Definitions live as YAML or JSON files and are published,
 * versioned, on the compacted exp.definitions topic.
 *
 * Every list and string has a cap, so a hostile or mistaken file is refused at once with the
 * field and the cap named, and every check (duplicates included) runs in linear time.
 */
export const DEFINITION_LIMITS = {
  /** Experiment, variant and metric ids. */
  idLength: 128,
  nameLength: 200,
  ownerLength: 200,
  hypothesisLength: 2_000,
  variants: 20,
  primaryMetrics: 10,
  guardrailMetrics: 20,
  /** The largest cap a sum metric may set (ingest refuses values above 1e15 at most). */
  capUpper: 1e15,
  /** A definition file on disk (YAML or JSON); larger files are refused before they are parsed. */
  fileBytes: 64 * 1024,
} as const;

const atMostCharacters = (max: number) => ({ error: (issue: { input?: unknown }) => `at most ${max} characters (got ${typeof issue.input === 'string' ? issue.input.length : '?'})` });
const atMostItems = (max: number, what: string) => ({ error: (issue: { input?: unknown }) => `at most ${max} ${what} (got ${Array.isArray(issue.input) ? issue.input.length : '?'})` });

const identifier = z
  .string()
  .max(DEFINITION_LIMITS.idLength, atMostCharacters(DEFINITION_LIMITS.idLength))
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'letters, digits, dot, dash, underscore; starting with a letter or digit');
const text = (max: number) => z.string().trim().min(1, 'must not be empty').max(max, atMostCharacters(max));

/** The checks whose action a definition sets (`checks:` in a definition file). */
export const CHECK_SETTINGS = ['srm', 'guardrails', 'usersInTwoVariants', 'rateCollapse', 'noTraffic'] as const;
export type CheckSetting = (typeof CHECK_SETTINGS)[number];
const CheckActionSchema = z.enum(['halt', 'warn']);
export type CheckAction = z.infer<typeof CheckActionSchema>;

/**
 * A metric, by `type`:
 * - sum: the user's total of the metric's values; with `cap: { upper }` the user's total is
 *   capped at `upper` (min(x, upper)) before it enters Σx and Σx², so one heavy user cannot
 *   dominate a mean and the sums stay additive (each update moves Σx by the change of the
 *   capped total). The cap is on the user's total, not on single events.
 * - conversion: 1 if the user did it at all, else 0.
 * - ratio: numerator ÷ denominator over the same users, e.g. errors per request: each user's
 *   total x of the `numerator` metric events and y of the `denominator` ones (uncapped), the
 *   variant's Σx / Σy, its variance by the delta method (services/stats/ratioOfMeans.ts).
 *   `numerator` and `denominator` name metric events (what producers send), need not be
 *   metrics of the definition themselves, and must differ.
 * The metric events a definition reads: `eventMetrics`.
 */
const SumMetricSchema = z.strictObject({
  name: identifier,
  type: z.literal('sum'),
  cap: z.strictObject({ upper: z.number().gt(0, 'a cap must be positive').max(DEFINITION_LIMITS.capUpper, `at most ${DEFINITION_LIMITS.capUpper}`) }).optional(),
});
const ConversionMetricSchema = z.strictObject({ name: identifier, type: z.literal('conversion') });
const RatioMetricSchema = z.strictObject({ name: identifier, type: z.literal('ratio'), numerator: identifier, denominator: identifier });
const MetricSchema = z.discriminatedUnion('type', [SumMetricSchema, ConversionMetricSchema, RatioMetricSchema]);

const guardrailFields = {
  /** Which way is bad: a guardrail halts when the metric moves this way beyond the tolerance. */
  harmfulDirection: z.enum(['increase', 'decrease']),
  /** Allowed harm: an absolute difference of means (of ratios), or relative to the control's. */
  tolerance: z.strictObject({ kind: z.enum(['absolute', 'relative']), value: z.number().min(0) }),
};
const GuardrailSchema = z.discriminatedUnion('type', [SumMetricSchema.extend(guardrailFields), ConversionMetricSchema.extend(guardrailFields), RatioMetricSchema.extend(guardrailFields)]);

export const ExperimentDefinitionSchema = z
  .strictObject({
    id: identifier,
    name: text(DEFINITION_LIMITS.nameLength),
    hypothesis: text(DEFINITION_LIMITS.hypothesisLength),
    owner: text(DEFINITION_LIMITS.ownerLength),
    variants: z
      .array(z.strictObject({ id: identifier, weight: z.number().gt(0).lt(1) }))
      .min(2, 'at least two variants')
      .max(DEFINITION_LIMITS.variants, atMostItems(DEFINITION_LIMITS.variants, 'variants')),
    /** The first variant is the control unless `control` names another. */
    control: identifier.optional(),
    primaryMetrics: z.array(MetricSchema).min(1, 'at least one primary metric').max(DEFINITION_LIMITS.primaryMetrics, atMostItems(DEFINITION_LIMITS.primaryMetrics, 'primary metrics')),
    guardrailMetrics: z.array(GuardrailSchema).max(DEFINITION_LIMITS.guardrailMetrics, atMostItems(DEFINITION_LIMITS.guardrailMetrics, 'guardrail metrics')).default([]),
    /**
     * The experiment's family-wise false-halt budget: the chance, under continuous monitoring,
     * that any halting check ever halts a harmless experiment. Shared by the halting checks by
     * the rule in ./guardPolicy.ts; 0.05 when not given.
     */
    falseHaltBudget: z.number().gt(0).lt(0.5).optional(),
    /** Legacy: SRM's level, outside the budget (see ./guardPolicy.ts). Definitions from before the budget carry it. */
    srmThreshold: z.number().gt(0).lt(0.5).optional(),
    /** Legacy: each guardrail test's level, outside the budget (see ./guardPolicy.ts). */
    guardrailAlpha: z.number().gt(0).lt(0.5).optional(),
    /** Whether each check halts or only warns; see ./guardPolicy.ts for the defaults (today's behaviour). */
    checks: z.strictObject(Object.fromEntries(CHECK_SETTINGS.map((k) => [k, CheckActionSchema.optional()])) as Record<CheckSetting, z.ZodOptional<typeof CheckActionSchema>>).optional(),
    /** A running experiment without exposures for this many minutes raises NO_TRAFFIC (60 when not given). */
    noTrafficMinutes: z.number().positive().max(7 * 24 * 60).optional(),
    /** Metric events count for this many hours after the user's exposure. */
    attributionWindowHours: z.number().positive().max(24 * 365).default(24 * 14),
    /** Users per variant before any automatic decision. */
    minimumSampleSize: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER).default(100),
    /** Users per variant the experiment is planned for. */
    plannedSampleSize: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER),
  })
  .superRefine((d, ctx) => {
    const total = d.variants.reduce((s, v) => s + v.weight, 0);
    if (Math.abs(total - 1) > 1e-9) ctx.addIssue({ code: 'custom', path: ['variants'], message: `weights must sum to 1, they sum to ${total}` });
    // Duplicates through a Set: linear in the number of entries.
    const ids = new Set<string>();
    d.variants.forEach(({ id }, i) => {
      if (ids.has(id)) ctx.addIssue({ code: 'custom', path: ['variants', i, 'id'], message: `variant '${id}' appears twice` });
      ids.add(id);
    });
    if (d.control !== undefined && !ids.has(d.control)) ctx.addIssue({ code: 'custom', path: ['control'], message: `'${d.control}' is not one of the variants (${[...ids].join(', ')})` });
    const metrics = new Set<string>();
    for (const [list, entries] of [['primaryMetrics', d.primaryMetrics], ['guardrailMetrics', d.guardrailMetrics]] as const) {
      entries.forEach(({ name }, i) => {
        if (metrics.has(name)) ctx.addIssue({ code: 'custom', path: [list, i, 'name'], message: `metric '${name}' is defined twice` });
        metrics.add(name);
      });
    }
    for (const [list, entries] of [['primaryMetrics', d.primaryMetrics], ['guardrailMetrics', d.guardrailMetrics]] as const) {
      entries.forEach((m, i) => {
        if (m.type === 'ratio' && m.numerator === m.denominator) ctx.addIssue({ code: 'custom', path: [list, i, 'denominator'], message: `must differ from the numerator ('${m.numerator}')` });
      });
    }
    if (d.minimumSampleSize > d.plannedSampleSize) ctx.addIssue({ code: 'custom', path: ['minimumSampleSize'], message: `must not exceed plannedSampleSize (${d.plannedSampleSize})` });
  });

export type ExperimentDefinition = z.infer<typeof ExperimentDefinitionSchema>;
export type MetricDefinition = z.infer<typeof MetricSchema>;
export type GuardrailDefinition = z.infer<typeof GuardrailSchema>;

/** What the definitions topic carries: a definition with its version. */
export interface PublishedDefinition {
  experimentId: string;
  version: number;
  appliedAt: number;
  definition: ExperimentDefinition;
}

export function controlVariant(d: ExperimentDefinition): string {
  return d.control ?? d.variants[0]!.id;
}

/** Every metric of the definition, primary then guardrail, without the guardrail settings. */
export function allMetrics(d: ExperimentDefinition): MetricDefinition[] {
  return [...d.primaryMetrics, ...d.guardrailMetrics.map(metricOfGuardrail)];
}

/** A guardrail's metric definition (name, type, cap or numerator and denominator), without its direction and tolerance. */
export function metricOfGuardrail(guardrail: GuardrailDefinition): MetricDefinition {
  const { harmfulDirection: _direction, tolerance: _tolerance, ...metric } = guardrail;
  return metric as MetricDefinition;
}

/** The metric events a metric reads: its own name, or a ratio's numerator and denominator. */
export function metricEventNames(m: MetricDefinition): string[] {
  return m.type === 'ratio' ? [m.numerator, m.denominator] : [m.name];
}

/** The definition's metrics that read metric event `eventMetric` (by name, or as a ratio's numerator or denominator). */
/**
 * The attribution window in whole milliseconds: a metric event counts for a user exposed at t
 * if its event time is in [t, t + window), the end excluded. The aggregator and batch
 * reanalysis both take it from here, so the two paths share one edge.
 */
export function attributionWindowMs(d: ExperimentDefinition): number {
  return Math.round(d.attributionWindowHours * 3_600_000);
}

export function metricsReading(d: ExperimentDefinition, eventMetric: string): readonly MetricDefinition[] {
  // Asked for every metric event the aggregator counts: worked out once per definition (which
  // is never changed once parsed; a new version is a new object) and event name.
  let byEvent = readingCache.get(d);
  if (!byEvent) readingCache.set(d, (byEvent = new Map()));
  let reading = byEvent.get(eventMetric);
  if (!reading) {
    reading = allMetrics(d).filter((m) => metricEventNames(m).includes(eventMetric));
    // Bounded by the definition's metric names; a name it does not read is not remembered.
    if (reading.length === 0) return NONE;
    byEvent.set(eventMetric, reading);
  }
  return reading;
}

const readingCache = new WeakMap<ExperimentDefinition, Map<string, readonly MetricDefinition[]>>();
const NONE: readonly MetricDefinition[] = Object.freeze([]);

/** The metric events (names) a definition reads. */
export function eventMetrics(d: ExperimentDefinition): Set<string> {
  return new Set(allMetrics(d).flatMap(metricEventNames));
}

const MAX_PROBLEMS_SHOWN = 20;

/** Validates a parsed value; the error lists the problems (the first 20) as `field.path: message`. */
export function parseDefinition(value: unknown, source: string): ExperimentDefinition {
  const parsed = ExperimentDefinitionSchema.safeParse(value);
  if (parsed.success) return parsed.data;
  const { issues } = parsed.error;
  const problems = issues.slice(0, MAX_PROBLEMS_SHOWN).map((issue) => {
    const path = issue.path.map(String).join('.') || '(top level)';
    return issue.code === 'unrecognized_keys' ? `${path}: unknown field(s) ${issue.keys.slice(0, 10).join(', ')}${issue.keys.length > 10 ? ` and ${issue.keys.length - 10} more` : ''}` : `${path}: ${issue.message}`;
  });
  if (issues.length > MAX_PROBLEMS_SHOWN) problems.push(`… and ${issues.length - MAX_PROBLEMS_SHOWN} more problem(s)`);
  throw new PipelineError('INPUT_INVALID', `${source}: invalid experiment definition:\n  ${problems.join('\n  ')}`, { context: { file: source } });
}

/** Reads a .yaml/.yml/.json definition file of at most DEFINITION_LIMITS.fileBytes. */
export function readDefinitionFile(path: string): ExperimentDefinition {
  const max = DEFINITION_LIMITS.fileBytes;
  let bytes: Buffer;
  try {
    bytes = readAtMost(path, max + 1);
  } catch (cause) {
    throw new PipelineError('INPUT_INVALID', `cannot read ${path}: ${(cause as Error).message}`, { cause });
  }
  // Refused before parsing: a YAML parser needs seconds for a few megabytes.
  if (bytes.length > max) throw new PipelineError('INPUT_INVALID', `${path}: a definition file may be at most ${max / 1024} KiB; this one is larger`, { context: { file: path } });
  const text = bytes.toString('utf8');
  let value: unknown;
  try {
    value = extname(path) === '.json' ? JSON.parse(text) : parseYaml(text);
  } catch (cause) {
    throw new PipelineError('INPUT_INVALID', `${path}: not valid ${extname(path) === '.json' ? 'JSON' : 'YAML'}: ${(cause as Error).message}`, { cause });
  }
  return parseDefinition(value, path);
}

/** The first `limit` bytes of a file (all of it if shorter), without reading the rest. */
function readAtMost(path: string, limit: number): Buffer {
  const fd = openSync(path, 'r');
  try {
    const buffer = Buffer.alloc(limit);
    let filled = 0;
    while (filled < limit) {
      const n = readSync(fd, buffer, filled, limit - filled, null);
      if (n === 0) break;
      filled += n;
    }
    return buffer.subarray(0, filled);
  } finally {
    closeSync(fd);
  }
}
