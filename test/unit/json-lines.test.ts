import { describe, expect, it } from 'vitest';
import { parseEventLine } from '../../services/producer/jsonLines.ts';

describe('parseEventLine', () => {
  it('reads exposures with epoch or ISO times and an optional context', () => {
    expect(parseEventLine('exposure', '{"eventId":"e","experimentId":"x","variantId":"a","userId":"u","eventTime":1764000000000}')).toEqual({
      ok: true,
      event: { eventId: 'e', experimentId: 'x', variantId: 'a', userId: 'u', eventTime: 1764000000000, context: null },
    });
    const iso = parseEventLine('exposure', '{"eventId":"e","experimentId":"x","variantId":"a","userId":"u","eventTime":"2026-11-25T12:00:00.250Z","context":{"app":"1"}}');
    expect(iso).toMatchObject({ ok: true, event: { eventTime: Date.UTC(2026, 10, 25, 12, 0, 0, 250), context: { app: '1' } } });
  });

  it('reads metrics', () => {
    expect(parseEventLine('metric', '{"eventId":"m","userId":"u","metric":"revenue","value":-2.5,"eventTime":5}')).toEqual({ ok: true, event: { eventId: 'm', userId: 'u', metric: 'revenue', value: -2.5, eventTime: 5 } });
  });

  it('says what is wrong', () => {
    const error = (kind: 'exposure' | 'metric', line: string) => {
      const parsed = kind === 'exposure' ? parseEventLine('exposure', line) : parseEventLine('metric', line);
      return parsed.ok ? 'accepted' : parsed.error;
    };
    expect(error('metric', 'nope')).toMatch(/^not JSON/);
    expect(error('metric', '[1]')).toBe('expected a JSON object');
    expect(error('metric', '{"eventId":"m","userId":"u","metric":"r","eventTime":5}')).toBe('value is missing');
    expect(error('metric', '{"eventId":"m","userId":"u","metric":"r","value":"3","eventTime":5}')).toMatch(/^value: expected a finite number/);
    expect(error('metric', '{"eventId":"m","userId":7,"metric":"r","value":3,"eventTime":5}')).toMatch(/^userId: expected a string/);
    expect(error('metric', '{"eventId":"m","userId":"u","metric":"r","value":3,"eventTime":-1}')).toMatch(/^eventTime/);
    expect(error('metric', '{"eventId":"m","userId":"u","metric":"r","value":3,"eventTime":5,"extra":1}')).toMatch(/^unknown field\(s\) extra/);
    expect(error('exposure', '{"eventId":"e","experimentId":"x","variantId":"a","userId":"u","eventTime":1,"context":{"n":1}}')).toMatch(/^context/);
    expect(error('exposure', '{"eventId":"e","experimentId":"x","variantId":" ","userId":"u","eventTime":1}')).toBe('variantId is empty');
  });
});
