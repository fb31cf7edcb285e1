import { DEFAULT_NO_TRAFFIC_MINUTES } from '../../common/guardPolicy.ts';
import type { GuardCheck } from './guardCheck.ts';

/**
 * NO_TRAFFIC: a running experiment has had no exposure for the definition's
 * `noTrafficMinutes` (default 60): the newest exposure minute (event time) ended that long
 * before `now` (the evaluation's wall-clock time; without one the check stays quiet). Once per
 * quiet spell (the incident names the last minute with exposures). A warning by default
 * (`checks.noTraffic`). Event time against wall-clock time: exposures produced with old event
 * times (a backfill) look like silence, which is what the warning is for.
 */
export const noTraffic: GuardCheck<'NO_TRAFFIC'> = {
  type: 'NO_TRAFFIC',
  waitsForMinimumSample: false,
  setting: 'noTraffic',
  signals({ state, definition, variants, base, now }) {
    if (now === undefined) return [];
    const minutes = variants.flatMap((v) => Object.entries(state.variants[v]?.exposuresByMinute ?? {}).filter(([, n]) => n > 0).map(([m]) => Number(m)));
    if (minutes.length === 0) return [];
    const lastMinute = Math.max(...minutes);
    const quietMinutes = (now - (lastMinute + 60_000)) / 60_000;
    const limit = definition.noTrafficMinutes ?? DEFAULT_NO_TRAFFIC_MINUTES;
    if (!(quietMinutes >= limit)) return [];
    return [{
      incident: `NO_TRAFFIC:${lastMinute}`,
      type: 'NO_TRAFFIC',
      severity: 'warning',
      halt: false,
      variantId: null,
      metric: null,
      reason: `no exposures for ${Math.floor(quietMinutes)} minutes (since ${new Date(lastMinute + 60_000).toISOString()}; the limit is ${limit})`,
      evidence: { ...base, lastExposureMinute: lastMinute, quietMinutes, noTrafficMinutes: limit, now },
    }];
  },
};
