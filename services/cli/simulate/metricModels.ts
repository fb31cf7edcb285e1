import { PipelineError } from '../../common/errors.ts';
import type { MetricDefinition } from '../../common/experimentDefinition.ts';
import { gaussian } from '../../common/random.ts';

/**
 * How `expctl simulate` draws a simulated user's value of each metric: a baseline per metric
 * (defaults by metric type, `--baseline <metric>=...` overrides) and an effect on the
 * treatment variants (`--effect <metric>=<change>`).
 *
 * - conversion: the user converts with probability `rate` (default 0.1); value 1 or 0.
 * - sum: `dist=lognormal` (default) or `normal`, with the given `mean` and `sd` of a user's
 *   total (defaults mean 10, sd 10: skewed like revenue or page time). A lognormal needs a
 *   positive mean; a normal one may draw negative values.
 *
 * An effect moves the treatment's mean and keeps the spread: `+5` / `-5` absolute, `10%`
 * relative to the baseline mean, `0.1sd` in baseline standard deviations (for a conversion
 * metric the sd is √(rate·(1 − rate))). A conversion rate moved outside [0, 1] is refused.
 * A sum metric's cap applies to the drawn total, as the aggregator applies it.
 *
 * - ratio (numerator ÷ denominator of the same user, e.g. errors per request or revenue per
 *   order): a user has y denominator units, Poisson with mean `per` (default 5; a user may have
 *   none), and a numerator x that sums one value per unit, `dist` with the given `mean` and
 *   `sd` per unit (defaults lognormal, 1 and 1). The ratio of means is then `mean`, and the
 *   per-user standard deviation the delta method sees (of x − R·y, over ȳ) is sd / √per: an
 *   `sd` effect is in those units, and an effect moves the per-unit mean, so the ratio moves
 *   by exactly the shift.
 */
export type Baseline =
  | { type: 'conversion'; rate: number }
  | { type: 'sum'; dist: 'normal' | 'lognormal'; mean: number; sd: number }
  | { type: 'ratio'; dist: 'normal' | 'lognormal'; mean: number; sd: number; per: number };

export type EffectUnit = 'absolute' | 'relative' | 'sd';

export interface Effect {
  metric: string;
  change: number;
  unit: EffectUnit;
  /** As the user wrote it, for the report. */
  text: string;
}

export const DEFAULT_BASELINES = {
  conversion: { type: 'conversion', rate: 0.1 },
  sum: { type: 'sum', dist: 'lognormal', mean: 10, sd: 10 },
  ratio: { type: 'ratio', dist: 'lognormal', mean: 1, sd: 1, per: 5 },
} as const satisfies Record<MetricDefinition['type'], Baseline>;

/** Means and standard deviations accepted in a baseline, and the largest absolute effect. */
export const MAX_MAGNITUDE = 1e9;
/** The largest mean number of denominator units per user of a ratio metric (each unit is drawn). */
export const MAX_UNITS_PER_USER = 100;
/** The longest `--baseline` / `--effect` value read (anything longer is refused unread). */
export const MAX_FLAG_TEXT = 200;

/** Splits `metric=rest` and checks the metric is one of the definition's. */
export function metricAssignment(flag: string, text: string, metrics: readonly MetricDefinition[]): { metric: MetricDefinition; rest: string } {
  if (text.length > MAX_FLAG_TEXT) throw usage(flag, `is at most ${MAX_FLAG_TEXT} characters (got ${text.length})`);
  const at = text.indexOf('=');
  if (at <= 0) throw usage(flag, `must be <metric>=<value>, got '${text}'`);
  const name = text.slice(0, at);
  const metric = metrics.find((m) => m.name === name);
  if (!metric) throw usage(flag, `'${name}' is not a metric of the definition (${metrics.map((m) => m.name).join(', ')})`);
  return { metric, rest: text.slice(at + 1) };
}

/** `--baseline purchase=rate=0.2`, `--baseline revenue=mean=10,sd=3[,dist=normal]`: unspecified keys keep the defaults. */
export function parseBaseline(text: string, metrics: readonly MetricDefinition[]): { metric: string; baseline: Baseline } {
  const { metric, rest } = metricAssignment('--baseline', text, metrics);
  const fields = new Map<string, string>();
  for (const part of rest.split(',')) {
    const eq = part.indexOf('=');
    const key = eq < 0 ? part.trim() : part.slice(0, eq).trim();
    if (eq < 0) throw usage('--baseline', `${metric.name}: '${part}' is not key=value`);
    if (fields.has(key)) throw usage('--baseline', `${metric.name}: '${key}' is given twice`);
    fields.set(key, part.slice(eq + 1).trim());
  }
  const allowed = metric.type === 'conversion' ? ['rate'] : metric.type === 'ratio' ? ['mean', 'sd', 'dist', 'per'] : ['mean', 'sd', 'dist'];
  for (const key of fields.keys()) if (!allowed.includes(key)) throw usage('--baseline', `${metric.name} is a ${metric.type} metric: its keys are ${allowed.join(', ')} (got '${key}')`);
  const num = (key: string, fallback: number) => (fields.has(key) ? finite('--baseline', `${metric.name} ${key}`, fields.get(key)!) : fallback);
  if (metric.type === 'conversion') {
    const rate = num('rate', DEFAULT_BASELINES.conversion.rate);
    if (rate < 0 || rate > 1) throw usage('--baseline', `${metric.name} rate must be from 0 to 1, got ${rate}`);
    return { metric: metric.name, baseline: { type: 'conversion', rate } };
  }
  const defaults = DEFAULT_BASELINES[metric.type === 'ratio' ? 'ratio' : 'sum'];
  const dist = fields.get('dist') ?? defaults.dist;
  if (dist !== 'normal' && dist !== 'lognormal') throw usage('--baseline', `${metric.name} dist must be normal or lognormal, got '${dist}'`);
  const mean = num('mean', defaults.mean);
  const sd = num('sd', defaults.sd);
  if (Math.abs(mean) > MAX_MAGNITUDE) throw usage('--baseline', `${metric.name} mean must be within ±${MAX_MAGNITUDE}, got ${mean}`);
  if (sd < 0 || sd > MAX_MAGNITUDE) throw usage('--baseline', `${metric.name} sd must be from 0 to ${MAX_MAGNITUDE}, got ${sd}`);
  if (dist === 'lognormal' && mean <= 0) throw usage('--baseline', `${metric.name}: a lognormal metric needs a positive mean (got ${mean}); use dist=normal`);
  if (metric.type !== 'ratio') return { metric: metric.name, baseline: { type: 'sum', dist, mean, sd } };
  const per = num('per', DEFAULT_BASELINES.ratio.per);
  if (!(per > 0 && per <= MAX_UNITS_PER_USER)) throw usage('--baseline', `${metric.name} per (denominator units per user) must be above 0 and at most ${MAX_UNITS_PER_USER}, got ${per}`);
  return { metric: metric.name, baseline: { type: 'ratio', dist, mean, sd, per } };
}

const EFFECT = /^([+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:e[+-]?\d+)?)(%|sd)?$/i;

/** `--effect page_load_ms=+0.1sd`, `=10%`, `=-5`. */
export function parseEffect(text: string, metrics: readonly MetricDefinition[]): Effect {
  const { metric, rest } = metricAssignment('--effect', text, metrics);
  const match = EFFECT.exec(rest.trim());
  if (!match) throw usage('--effect', `${metric.name}: '${rest}' is not a change: write +5 (absolute), 10% (relative) or 0.1sd (standard deviations)`);
  const value = finite('--effect', metric.name, match[1]!);
  const unit: EffectUnit = match[2] === undefined ? 'absolute' : match[2] === '%' ? 'relative' : 'sd';
  const change = unit === 'relative' ? value / 100 : value;
  if (Math.abs(change) > MAX_MAGNITUDE) throw usage('--effect', `${metric.name}: at most ${MAX_MAGNITUDE} in size, got ${rest}`);
  return { metric: metric.name, change, unit, text: rest.trim() };
}

/** Draws one user's value; `random` is the run's seeded generator. */
export type ValueDraw = (random: () => number) => number;

/** The absolute shift of the mean an effect makes on a baseline. */
export function meanShift(baseline: Baseline, effect: Effect | undefined): number {
  if (!effect) return 0;
  const mean = baseline.type === 'conversion' ? baseline.rate : baseline.mean;
  const sd = baseline.type === 'conversion' ? Math.sqrt(baseline.rate * (1 - baseline.rate)) : baseline.type === 'ratio' ? baseline.sd / Math.sqrt(baseline.per) : baseline.sd;
  return effect.unit === 'absolute' ? effect.change : effect.unit === 'relative' ? effect.change * Math.abs(mean) : effect.change * sd;
}

/** The draw for a variant: the baseline, shifted by `shift` (0 for the control). A ratio metric's draw is its per-unit value (see ratioDraw). */
export function valueDraw(metric: string, baseline: Baseline, shift: number): ValueDraw {
  if (baseline.type === 'conversion') {
    const rate = baseline.rate + shift;
    if (!(rate >= -1e-12 && rate <= 1 + 1e-12)) throw usage('--effect', `${metric}: moves the conversion rate from ${baseline.rate} to ${rate}, outside 0 to 1`);
    return (random) => (random() < rate ? 1 : 0);
  }
  const { mean, sd } = baseline;
  if (baseline.dist === 'normal') return (random) => mean + shift + sd * gaussian(random);
  // Lognormal with this mean and sd: σ² = ln(1 + sd²/mean²), μ = ln(mean) − σ²/2.
  const sigma = Math.sqrt(Math.log1p((sd * sd) / (mean * mean)));
  const mu = Math.log(mean) - (sigma * sigma) / 2;
  return (random) => Math.exp(mu + sigma * gaussian(random)) + shift;
}

/** One user's numerator total x and denominator total y of a ratio metric. */
export interface RatioValue {
  x: number;
  y: number;
}

/** A ratio metric's draw for a variant: y ~ Poisson(per) units, x the sum of one shifted per-unit value each. Writes into `out` (no allocation per user). */
export function ratioDraw(metric: string, baseline: Extract<Baseline, { type: 'ratio' }>, shift: number): (random: () => number, out: RatioValue) => void {
  const unit = valueDraw(metric, { type: 'sum', dist: baseline.dist, mean: baseline.mean, sd: baseline.sd }, shift);
  const limit = Math.exp(-baseline.per);
  return (random, out) => {
    // Knuth's method: fine for a mean of at most MAX_UNITS_PER_USER (e^-100 is still a normal double).
    let y = 0;
    for (let p = random(); p > limit; p *= random()) y++;
    let x = 0;
    for (let i = 0; i < y; i++) x += unit(random);
    out.x = x;
    out.y = y;
  };
}

/** Values one simulated user costs for a metric (for the bound on the work of a simulation). */
export function drawsPerUser(baseline: Baseline): number {
  return baseline.type === 'ratio' ? 1 + 2 * baseline.per : 1;
}

export function describeBaseline(b: Baseline): string {
  if (b.type === 'conversion') return `conversion rate ${b.rate}`;
  return b.type === 'ratio' ? `${b.dist} mean ${b.mean} sd ${b.sd} per unit, ${b.per} units per user` : `${b.dist} mean ${b.mean} sd ${b.sd}`;
}

function finite(flag: string, what: string, text: string): number {
  const n = Number(text);
  if (text.trim() === '' || !Number.isFinite(n)) throw usage(flag, `${what} must be a finite number, got '${text}'`);
  return n;
}

export function usage(flag: string, message: string): PipelineError {
  return new PipelineError('INPUT_INVALID', `${flag} ${message}`);
}
