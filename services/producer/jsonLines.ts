import { StringDecoder } from 'node:string_decoder';
import type { ExposureEvent } from '../common/contracts/exposures.ts';
import type { MetricEvent } from '../common/contracts/metrics.ts';
import type { EventKind } from '../common/contracts/pipelineEvent.ts';

/**
 * Reads one JSON line as an exposure or metric event, with an error that says which field
 * is wrong and how. Times may be epoch milliseconds or ISO-8601 strings; `context` may be
 * left out. Unknown fields are refused: a typo such as `userID` must not pass silently.
 */
export type ParsedLine<T> = { ok: true; event: T } | { ok: false; error: string };

/** Caps on a line of `expctl produce` input: longer lines and bigger contexts are reported and skipped. */
export const LINE_LIMITS = { lineChars: 64 * 1024, contextEntries: 64 } as const;

const FIELDS: Record<EventKind, { required: string[]; optional: string[] }> = {
  exposure: { required: ['eventId', 'experimentId', 'variantId', 'userId', 'eventTime'], optional: ['context'] },
  metric: { required: ['eventId', 'userId', 'metric', 'value', 'eventTime'], optional: [] },
};

export function parseEventLine(kind: 'exposure', line: string): ParsedLine<ExposureEvent>;
export function parseEventLine(kind: 'metric', line: string): ParsedLine<MetricEvent>;
export function parseEventLine(kind: EventKind, line: string): ParsedLine<ExposureEvent | MetricEvent> {
  if (line.length > LINE_LIMITS.lineChars) return { ok: false, error: tooLong(line.length) };
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch (err) {
    return { ok: false, error: `not JSON: ${(err as Error).message}` };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return { ok: false, error: 'expected a JSON object' };
  const record = value as Record<string, unknown>;
  const { required, optional } = FIELDS[kind];
  const unknown = Object.keys(record).filter((k) => !required.includes(k) && !optional.includes(k));
  if (unknown.length > 0) return { ok: false, error: `unknown field(s) ${unknown.join(', ')}; expected ${[...required, ...optional].join(', ')}` };
  for (const field of required) {
    if (record[field] === undefined || record[field] === null) return { ok: false, error: `${field} is missing` };
  }
  for (const field of required.filter((f) => f !== 'eventTime' && f !== 'value')) {
    if (typeof record[field] !== 'string') return { ok: false, error: `${field}: expected a string, got ${JSON.stringify(record[field])}` };
    if ((record[field] as string).trim() === '') return { ok: false, error: `${field} is empty` };
  }
  const eventTime = toEpochMillis(record.eventTime);
  if (eventTime === undefined) return { ok: false, error: `eventTime: expected epoch milliseconds or an ISO-8601 time, got ${JSON.stringify(record.eventTime)}` };
  if (kind === 'metric') {
    if (typeof record.value !== 'number' || !Number.isFinite(record.value)) return { ok: false, error: `value: expected a finite number, got ${JSON.stringify(record.value)}` };
    return { ok: true, event: { eventId: record.eventId as string, userId: record.userId as string, metric: record.metric as string, value: record.value, eventTime } };
  }
  const context = record.context ?? null;
  if (context !== null && (typeof context !== 'object' || Array.isArray(context) || Object.values(context).some((v) => typeof v !== 'string'))) {
    return { ok: false, error: 'context: expected an object of string values' };
  }
  if (context !== null && Object.keys(context).length > LINE_LIMITS.contextEntries) return { ok: false, error: `context: at most ${LINE_LIMITS.contextEntries} entries (got ${Object.keys(context).length})` };
  return {
    ok: true,
    event: { eventId: record.eventId as string, experimentId: record.experimentId as string, variantId: record.variantId as string, userId: record.userId as string, eventTime, context: context as Record<string, string> | null },
  };
}

function toEpochMillis(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isSafeInteger(value) && value >= 0 ? value : undefined;
  if (typeof value === 'string' && /^\d{4}-\d{2}-\d{2}T/.test(value)) {
    const ms = Date.parse(value);
    return Number.isNaN(ms) ? undefined : ms;
  }
  return undefined;
}

function tooLong(chars: number): string {
  return `line too long: at most ${LINE_LIMITS.lineChars} characters (got ${chars})`;
}

/**
 * The lines of a text stream, never holding more than `maxChars` of one line: a longer line
 * is read through and handed over as its length only, so one huge line cannot exhaust memory
 * (readline would buffer it whole).
 */
export async function* boundedLines(input: AsyncIterable<string | Buffer>, maxChars = LINE_LIMITS.lineChars): AsyncGenerator<{ line: string } | { tooLong: number; error: string }> {
  let current = '';
  let overflow = 0; // characters of the current line beyond what is kept, 0 while it fits
  const end = () => {
    const line = overflow === 0 && current.endsWith('\r') ? current.slice(0, -1) : current;
    const chars = line.length + overflow;
    const out = chars > maxChars ? { tooLong: chars, error: tooLong(chars) } : { line };
    current = '';
    overflow = 0;
    return out;
  };
  const decoder = new StringDecoder('utf8'); // a character split across chunks stays whole
  for await (const chunk of input) {
    const text = typeof chunk === 'string' ? chunk : decoder.write(chunk);
    let start = 0;
    for (let newline = text.indexOf('\n'); ; newline = text.indexOf('\n', start)) {
      const piece = text.slice(start, newline === -1 ? text.length : newline);
      // One character more than the cap is kept: it may be the CR of a CRLF.
      if (overflow > 0 || current.length + piece.length > maxChars + 1) overflow += piece.length;
      else current += piece;
      if (newline === -1) break;
      yield end();
      start = newline + 1;
    }
  }
  if (current !== '' || overflow > 0) yield end();
}
