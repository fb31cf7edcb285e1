import { describe, expect, it } from 'vitest';
import { Readable } from 'node:stream';
import { boundedLines, LINE_LIMITS, parseEventLine } from '../../services/producer/jsonLines.ts';

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

describe('bounded input lines (expctl produce)', () => {
  const collect = async (chunks: (string | Buffer)[], max?: number) => {
    const out = [];
    for await (const read of boundedLines(Readable.from(chunks), max)) out.push(read);
    return out;
  };

  it('splits lines across chunks, drops a CR before LF, keeps a last line without LF, and a character split across chunks whole', async () => {
    const euro = Buffer.from('€');
    expect(await collect(['a\r\nb', 'c\n', '\nlast'])).toEqual([{ line: 'a' }, { line: 'bc' }, { line: '' }, { line: 'last' }]);
    expect(await collect([Buffer.from('x'), euro.subarray(0, 1), Buffer.concat([euro.subarray(1), Buffer.from('\n')])])).toEqual([{ line: 'x€' }]);
  });

  it('reads a line over the cap through without holding it, reporting its length, and goes on', async () => {
    const huge = Array.from({ length: 100 }, () => 'y'.repeat(100_000)); // 10 million characters in one line
    const lines = await collect(['ok\n', ...huge, '\nafter\n']);
    expect(lines).toEqual([{ line: 'ok' }, { tooLong: 10_000_000, error: `line too long: at most ${LINE_LIMITS.lineChars} characters (got 10000000)` }, { line: 'after' }]);
    expect(await collect(['12345\n123456\n'], 5)).toEqual([{ line: '12345' }, { tooLong: 6, error: expect.stringContaining('got 6') }]);
  });

  it('caps a line and the entries of a context', () => {
    expect(parseEventLine('metric', 'x'.repeat(LINE_LIMITS.lineChars + 1))).toEqual({ ok: false, error: `line too long: at most ${LINE_LIMITS.lineChars} characters (got ${LINE_LIMITS.lineChars + 1})` });
    const context = Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`k${i}`, 'v']));
    expect(parseEventLine('exposure', JSON.stringify({ eventId: 'e', experimentId: 'x', variantId: 'a', userId: 'u', eventTime: 1, context }))).toEqual({ ok: false, error: 'context: at most 64 entries (got 65)' });
  });
});
