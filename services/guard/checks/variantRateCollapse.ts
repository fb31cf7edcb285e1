import type { GuardCheck } from './guardCheck.ts';

export const MIN_MINUTE_EXPOSURES = 50;
export const COLLAPSED_SHARE = 0.1;

/**
 * VARIANT_RATE_COLLAPSE: a variant's exposures in the last complete minute (the newest minute
 * seen is still filling) under a tenth of its planned share, with at least 50 exposures in
 * that minute. A warning, per variant and minute.
 */
export const variantRateCollapse: GuardCheck<'VARIANT_RATE_COLLAPSE'> = {
  type: 'VARIANT_RATE_COLLAPSE',
  waitsForMinimumSample: false,
  setting: 'rateCollapse',
  signals({ state, definition, variants, base }) {
    const minutes = [...new Set(variants.flatMap((v) => Object.keys(state.variants[v]?.exposuresByMinute ?? {}).map(Number)))].sort((a, b) => a - b);
    const lastComplete = minutes.at(-2);
    if (lastComplete === undefined) return [];
    const counts = variants.map((v) => state.variants[v]?.exposuresByMinute[String(lastComplete)] ?? 0);
    const total = counts.reduce((a, b) => a + b, 0);
    return definition.variants.flatMap((v, i) => {
      const expected = v.weight * total;
      if (!(total >= MIN_MINUTE_EXPOSURES && counts[i]! < COLLAPSED_SHARE * expected)) return [];
      return [{ incident: `RATE_COLLAPSE:${v.id}:${lastComplete}`, type: 'VARIANT_RATE_COLLAPSE' as const, severity: 'warning' as const, halt: false, variantId: v.id, metric: null, reason: `variant ${v.id} had ${counts[i]} exposures in the minute from ${new Date(lastComplete).toISOString()}, expected about ${Math.round(expected)}`, evidence: { ...base, minute: lastComplete, exposures: counts[i], expected, minuteTotal: total } }];
    });
  },
};
