import { describe, expect, it } from 'vitest';
import { CONFIG_DEFAULTS, loadConfig } from '../../services/common/config.ts';
import { DEFAULT_FRESHNESS } from '../../services/control/verifyCommand.ts';
import { DEFAULT_VALIDATION_LIMITS } from '../../services/ingest/validateEvent.ts';
import { eventTimePolicy } from '../../services/aggregate/applyEvent.ts';

describe('CONFIG_DEFAULTS', () => {
  it('is what an empty configuration loads to, frozen', () => {
    const loaded = loadConfig({ env: {}, cwd: '/tmp' });
    expect(CONFIG_DEFAULTS.kafka).toEqual(loaded.kafka);
    expect(CONFIG_DEFAULTS.ingest).toEqual(loaded.ingest);
    expect(CONFIG_DEFAULTS.control).toEqual(loaded.control);
    expect(CONFIG_DEFAULTS.aggregate).toEqual(loaded.aggregate);
    expect(CONFIG_DEFAULTS.health).toEqual(loaded.health);
    expect(CONFIG_DEFAULTS.guard).toEqual(loaded.guard);
    expect(Object.isFrozen(CONFIG_DEFAULTS.ingest)).toBe(true);
  });

  it('is where the services\' fallbacks come from', () => {
    expect(DEFAULT_VALIDATION_LIMITS).toEqual({ maxFutureSkewMs: CONFIG_DEFAULTS.ingest.maxFutureSkewMs, maxEventAgeMs: CONFIG_DEFAULTS.ingest.maxEventAgeMs, maxIdLength: CONFIG_DEFAULTS.ingest.maxIdLength, maxAbsMetricValue: CONFIG_DEFAULTS.ingest.maxAbsMetricValue });
    expect(DEFAULT_FRESHNESS).toEqual({ maxAgeMs: CONFIG_DEFAULTS.control.maxCommandAgeMs, maxSkewMs: CONFIG_DEFAULTS.control.maxClockSkewMs });
    expect(eventTimePolicy().latenessMs).toBe(CONFIG_DEFAULTS.aggregate.latenessMs);
    // Minutes, not seconds: either raw topic may run minutes behind the other.
    expect(CONFIG_DEFAULTS.aggregate.latenessMs).toBeGreaterThanOrEqual(5 * 60_000);
  });
});
