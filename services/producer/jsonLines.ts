import type { EventKind, ExposureEvent, MetricEvent } from '../common/eventSchemas.ts';

/**
 * Reads one JSON line as an exposure or metric event, with an error that says which field
 * is wrong and how. Times may be epoch milliseconds or ISO-8601 strings; `context` may be
 * left out. Unknown fields are refused: a typo such as `userID` must not pass silently.
 */
export type ParsedLine<T> = { ok: true; event: T } | { ok: false; error: string };

const FIELDS: Record<EventKind, { required: string[]; optional: string[] }> = {
  exposure: { required: ['eventId', 'experimentId', 'variantId', 'userId', 'eventTime'], optional: ['context'] },
  metric: { required: ['eventId', 'userId', 'metric', 'value', 'eventTime'], optional: [] },
};

export function parseEventLine(kind: 'exposure', line: string): ParsedLine<ExposureEvent>;
export function parseEventLine(kind: 'metric', line: string): ParsedLine<MetricEvent>;
export function parseEventLine(kind: EventKind, line: string): ParsedLine<ExposureEvent | MetricEvent> {
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
