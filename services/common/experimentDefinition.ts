import { readFileSync } from 'node:fs';
import { extname } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { PipelineError } from './errors.ts';

/**
 * The experiment definition: one schema for the CLI (apply, plan), the aggregator, the
 * guard and the control plane. Definitions live as YAML or JSON files and are published,
 * versioned, on the compacted exp.definitions topic.
 */
const identifier = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/, 'letters, digits, dot, dash, underscore; starting with a letter or digit');

const MetricSchema = z.strictObject({
  name: identifier,
  /** sum: the user's total of the metric's values; conversion: 1 if the user did it at all, else 0. */
  type: z.enum(['sum', 'conversion']),
});

const GuardrailSchema = MetricSchema.extend({
  /** Which way is bad: a guardrail halts when the metric moves this way beyond the tolerance. */
  harmfulDirection: z.enum(['increase', 'decrease']),
  /** Allowed harm: an absolute difference of means, or relative to the control mean. */
  tolerance: z.strictObject({ kind: z.enum(['absolute', 'relative']), value: z.number().min(0) }),
});

export const ExperimentDefinitionSchema = z
  .strictObject({
    id: identifier,
    name: z.string().trim().min(1).max(200),
    hypothesis: z.string().trim().min(1).max(2_000),
    owner: z.string().trim().min(1).max(200),
    variants: z
      .array(z.strictObject({ id: identifier, weight: z.number().gt(0).lt(1) }))
      .min(2, 'at least two variants'),
    /** The first variant is the control unless `control` names another. */
    control: identifier.optional(),
    primaryMetrics: z.array(MetricSchema).min(1, 'at least one primary metric'),
    guardrailMetrics: z.array(GuardrailSchema).default([]),
    /** p-value below which the sample ratio is called mismatched. */
    srmThreshold: z.number().gt(0).lt(0.5).default(0.001),
    /** Level of the guardrail confidence sequences (always valid, checked after every update). */
    guardrailAlpha: z.number().gt(0).lt(0.5).default(0.05),
    /** Metric events count for this many hours after the user's exposure. */
    attributionWindowHours: z.number().positive().max(24 * 365).default(24 * 14),
    /** Users per variant before any automatic decision. */
    minimumSampleSize: z.number().int().min(1).default(100),
    /** Users per variant the experiment is planned for. */
    plannedSampleSize: z.number().int().min(1),
  })
  .superRefine((d, ctx) => {
    const total = d.variants.reduce((s, v) => s + v.weight, 0);
    if (Math.abs(total - 1) > 1e-9) ctx.addIssue({ code: 'custom', path: ['variants'], message: `weights must sum to 1, they sum to ${total}` });
    const ids = d.variants.map((v) => v.id);
    ids.forEach((id, i) => {
      if (ids.indexOf(id) !== i) ctx.addIssue({ code: 'custom', path: ['variants', i, 'id'], message: `variant '${id}' appears twice` });
    });
    if (d.control !== undefined && !ids.includes(d.control)) ctx.addIssue({ code: 'custom', path: ['control'], message: `'${d.control}' is not one of the variants (${ids.join(', ')})` });
    const metrics = [...d.primaryMetrics, ...d.guardrailMetrics].map((m) => m.name);
    metrics.forEach((name, i) => {
      if (metrics.indexOf(name) !== i) ctx.addIssue({ code: 'custom', path: ['guardrailMetrics'], message: `metric '${name}' is defined twice` });
    });
    if (d.minimumSampleSize > d.plannedSampleSize) ctx.addIssue({ code: 'custom', path: ['minimumSampleSize'], message: `must not exceed plannedSampleSize (${d.plannedSampleSize})` });
  });

export type ExperimentDefinition = z.infer<typeof ExperimentDefinitionSchema>;
export type MetricDefinition = z.infer<typeof MetricSchema>;

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

export function allMetrics(d: ExperimentDefinition): MetricDefinition[] {
  return [...d.primaryMetrics, ...d.guardrailMetrics.map(({ name, type }) => ({ name, type }))];
}

/** Validates a parsed value; the error lists every problem as `field.path: message`. */
export function parseDefinition(value: unknown, source: string): ExperimentDefinition {
  const parsed = ExperimentDefinitionSchema.safeParse(value);
  if (parsed.success) return parsed.data;
  const problems = parsed.error.issues.map((issue) => {
    const path = issue.path.map(String).join('.') || '(top level)';
    return issue.code === 'unrecognized_keys' ? `${path}: unknown field(s) ${issue.keys.join(', ')}` : `${path}: ${issue.message}`;
  });
  throw new PipelineError('INPUT_INVALID', `${source}: invalid experiment definition:\n  ${problems.join('\n  ')}`, { context: { file: source } });
}

/** Reads a .yaml/.yml/.json definition file. */
export function readDefinitionFile(path: string): ExperimentDefinition {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (cause) {
    throw new PipelineError('INPUT_INVALID', `cannot read ${path}: ${(cause as Error).message}`, { cause });
  }
  let value: unknown;
  try {
    value = extname(path) === '.json' ? JSON.parse(text) : parseYaml(text);
  } catch (cause) {
    throw new PipelineError('INPUT_INVALID', `${path}: not valid ${extname(path) === '.json' ? 'JSON' : 'YAML'}: ${(cause as Error).message}`, { cause });
  }
  return parseDefinition(value, path);
}
