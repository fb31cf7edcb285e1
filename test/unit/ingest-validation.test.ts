import { describe, expect, it } from 'vitest';
import type { ExposureEvent } from '../../services/common/contracts/exposures.ts';
import type { MetricEvent } from '../../services/common/contracts/metrics.ts';
import { ERROR_CODES } from '../../services/common/errors.ts';
import { chunksUnder } from '../../services/common/outputChunks.ts';
import { frame, unframe } from '../../services/common/wireFormat.ts';
import { DLQ_REASONS } from '../../services/ingest/dlqReasons.ts';
import { DEFAULT_VALIDATION_LIMITS, validateExposure, validateMetric } from '../../services/ingest/validateEvent.ts';

const NOW = Date.UTC(2026, 10, 25, 12);
const exposure: ExposureEvent = { eventId: 'e1', experimentId: 'exp', variantId: 'a', userId: 'u1', eventTime: NOW - 1_000, context: null };
const metric: MetricEvent = { eventId: 'm1', userId: 'u1', metric: 'revenue', value: 9.5, eventTime: NOW };
const limits = { ...DEFAULT_VALIDATION_LIMITS, maxIdLength: 10 };

describe('Confluent framing', () => {
  it('round-trips a schema id and body', () => {
    const framed = frame(42, Buffer.from([1, 2, 3]));
    expect([...framed.subarray(0, 5)]).toEqual([0, 0, 0, 0, 42]);
    expect(unframe(framed)).toEqual({ ok: true, schemaId: 42, body: Buffer.from([1, 2, 3]) });
  });

  it('names what is wrong with a frame', () => {
    expect(unframe(null)).toMatchObject({ ok: false, problem: 'EMPTY_PAYLOAD' });
    expect(unframe(Buffer.alloc(0))).toMatchObject({ ok: false, problem: 'EMPTY_PAYLOAD' });
    expect(unframe(Buffer.from([0, 0, 0, 1]))).toMatchObject({ ok: false, problem: 'TOO_SHORT' });
    expect(unframe(Buffer.from([0x7b, 0, 0, 0, 1, 2]))).toMatchObject({ ok: false, problem: 'BAD_MAGIC_BYTE', detail: expect.stringContaining('0x7b') });
  });
});

describe('event rules', () => {
  it('accepts well-formed events', () => {
    expect(validateExposure(exposure, NOW, limits)).toBeUndefined();
    expect(validateMetric(metric, NOW, limits)).toBeUndefined();
  });

  it('refuses empty and over-long ids, naming the field', () => {
    expect(validateExposure({ ...exposure, variantId: '  ' }, NOW, limits)).toEqual({ reason: 'EMPTY_ID', message: 'variantId is empty' });
    expect(validateMetric({ ...metric, metric: '' }, NOW, limits)).toEqual({ reason: 'EMPTY_ID', message: 'metric is empty' });
    expect(validateExposure({ ...exposure, userId: 'x'.repeat(11) }, NOW, limits)).toMatchObject({ reason: 'FIELD_TOO_LONG', message: expect.stringContaining('userId has 11 characters') });
  });

  it('refuses non-finite metric values', () => {
    for (const value of [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]) {
      expect(validateMetric({ ...metric, value }, NOW, limits)?.reason).toBe('NON_FINITE_VALUE');
    }
    expect(validateMetric({ ...metric, value: -3 }, NOW, limits)).toBeUndefined();
  });

  it('refuses metric values beyond the configured magnitude, inclusive at the limit, before they can overflow Σx²', () => {
    const limit = DEFAULT_VALIDATION_LIMITS.maxAbsMetricValue;
    expect(limit).toBe(1e12);
    // The next double above the limit: the smallest value that must be refused.
    const justAbove = limit + limit * Number.EPSILON;
    expect(justAbove).toBeGreaterThan(limit);
    expect(validateMetric({ ...metric, value: limit }, NOW, limits)).toBeUndefined();
    expect(validateMetric({ ...metric, value: -limit }, NOW, limits)).toBeUndefined();
    for (const value of [justAbove, -justAbove, 1e300, 1e308, -1e308, Number.MAX_VALUE]) {
      expect(validateMetric({ ...metric, value }, NOW, limits), `value ${value}`).toEqual({ reason: 'VALUE_OUT_OF_RANGE', message: `metric "revenue" has value ${value}; its magnitude may be at most ${limit}` });
    }
    // 1e300 is finite, but its square is not: exactly what the limit is there for.
    expect(Number.isFinite(1e300 * 1e300)).toBe(false);
    // A configured limit applies; NaN and infinities keep their own reason.
    expect(validateMetric({ ...metric, value: 6 }, NOW, { ...limits, maxAbsMetricValue: 5 })?.reason).toBe('VALUE_OUT_OF_RANGE');
    expect(validateMetric({ ...metric, value: Number.NEGATIVE_INFINITY }, NOW, limits)?.reason).toBe('NON_FINITE_VALUE');
  });

  it('keeps DLQ reason codes apart from the pipeline error codes (both are stored in dead_letters.reason)', () => {
    expect(Object.keys(DLQ_REASONS).filter((code) => code in ERROR_CODES)).toEqual([]);
  });

  it('refuses exposures of undefined experiments or variants when definitions are checked', () => {
    const lookup = (id: string) => (id === 'exp' ? ['a', 'b'] : undefined);
    expect(validateExposure(exposure, NOW, limits, lookup)).toBeUndefined();
    expect(validateExposure({ ...exposure, experimentId: 'other' }, NOW, limits, lookup)).toMatchObject({ reason: 'UNKNOWN_EXPERIMENT' });
    expect(validateExposure({ ...exposure, variantId: 'c' }, NOW, limits, lookup)).toMatchObject({ reason: 'UNKNOWN_VARIANT', message: expect.stringContaining('its variants are a, b') });
  });

  it('bounds event time around ingest time, inclusive at the limits', () => {
    const { maxFutureSkewMs, maxEventAgeMs } = limits;
    expect(validateExposure({ ...exposure, eventTime: NOW + maxFutureSkewMs }, NOW, limits)).toBeUndefined();
    expect(validateExposure({ ...exposure, eventTime: NOW + maxFutureSkewMs + 1 }, NOW, limits)?.reason).toBe('EVENT_TIME_IN_FUTURE');
    expect(validateMetric({ ...metric, eventTime: NOW - maxEventAgeMs }, NOW, limits)).toBeUndefined();
    expect(validateMetric({ ...metric, eventTime: NOW - maxEventAgeMs - 1 }, NOW, limits)?.reason).toBe('EVENT_TIME_TOO_OLD');
  });
});

describe('output chunking for transactions', () => {
  const output = (bytes: number) => ({ topic: 't', message: { key: null, value: Buffer.alloc(bytes) } });

  it('keeps every request under the byte budget and the order intact', () => {
    const outputs = [100, 300, 300, 50, 600, 10].map(output);
    const chunks = chunksUnder(outputs, 800);
    expect(chunks.flat()).toEqual(outputs);
    for (const chunk of chunks) expect(chunk.reduce((n, o) => n + (o.message.value as Buffer).length + 64, 0)).toBeLessThanOrEqual(800);
    expect(chunks.length).toBe(3);
  });

  it('sends a record larger than the budget on its own', () => {
    expect(chunksUnder([output(10), output(5_000), output(10)], 1_000).map((c) => c.length)).toEqual([1, 1, 1]);
  });
});
