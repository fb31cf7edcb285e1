import type { PipelineEvent } from '../services/common/contracts/pipelineEvent.ts';

/**
 * "Raw in = valid + DLQ", record by record. Pure: the caller decodes the topics.
 * - Every record the broker acknowledged must be on its raw topic (else the broker lost it).
 * - Every raw record, by its coordinates (topic, partition, offset), must come out of ingest
 *   exactly once across exp.events (lineage fields) and exp.dlq (source coordinates):
 *   missing is lost, twice is duplicated; an output pointing at no raw record is an orphan.
 * - Each must come out where the drill meant it to: valid ones on exp.events carrying the
 *   same event id, invalid ones on exp.dlq with the expected reason.
 * A raw record the generator sent twice (it retried a send that had failed, as a producer
 * must) is reported apart: that copy was put there by the producer, not by the pipeline.
 */
export interface SentSummary {
  id: string;
  expected: string;
  acked: boolean;
  attempts: number;
}

export interface RawEntry {
  /** `topic:partition:offset` */
  coordinates: string;
  id: string;
  event?: PipelineEvent;
}

export interface IngestOutput {
  /** The raw record it came from, `topic:partition:offset`. */
  source: string;
  /** Where it is itself, for messages. */
  at: string;
  eventId?: string;
  reason?: string;
}

export interface AccountingResult {
  acked: number;
  unacknowledged: number;
  rawIn: number;
  valid: number;
  deadLettered: number;
  /** Acknowledged records missing from the raw topics. */
  ackedNotOnRawTopic: string[];
  /** Raw records that reached neither exp.events nor exp.dlq. */
  rawNotIngested: string[];
  /** Raw records that came out of ingest more than once (extra copies counted). */
  ingestedTwice: number;
  ingestedTwiceSamples: string[];
  /** Extra raw copies the generator's own retries explain. */
  rawCopiesFromRetries: number;
  /** Extra raw copies of records sent once: the broker or producer doubled them. */
  rawCopiesUnexplained: string[];
  orphans: string[];
  /** exp.events records whose event id differs from the raw record they name. */
  contentMismatches: string[];
  /** `expected -> actual` with counts, e.g. `valid -> UNKNOWN_EXPERIMENT: 12`. */
  misrouted: Record<string, number>;
  deadLetterReasons: Record<string, number>;
  /** Raw records meant to be valid, with their decoded events, in raw order: the oracle's input. */
  validEvents: PipelineEvent[];
}

const SAMPLES = 5;

export function accountRawRecords(sent: readonly SentSummary[], raw: readonly RawEntry[], events: readonly IngestOutput[], dlq: readonly IngestOutput[]): AccountingResult {
  const sentById = new Map(sent.map((s) => [s.id, s]));
  const rawById = new Map<string, RawEntry[]>();
  for (const r of raw) {
    const list = rawById.get(r.id);
    if (list) list.push(r);
    else rawById.set(r.id, [r]);
  }
  const acked = sent.filter((s) => s.acked);
  const ackedNotOnRawTopic = acked.filter((s) => !rawById.has(s.id)).map((s) => s.id);
  let rawCopiesFromRetries = 0;
  const rawCopiesUnexplained: string[] = [];
  for (const [id, copies] of rawById) {
    if (copies.length < 2) continue;
    const s = sentById.get(id);
    if (s && s.attempts >= copies.length) rawCopiesFromRetries += copies.length - 1;
    else rawCopiesUnexplained.push(`${id} ×${copies.length} (${copies.map((c) => c.coordinates).join(', ')}; sent ${s?.attempts ?? 0} time(s))`);
  }

  const outputsBySource = new Map<string, { kind: 'valid' | 'dlq'; output: IngestOutput }[]>();
  const rawByCoordinates = new Map(raw.map((r) => [r.coordinates, r]));
  const orphans: string[] = [];
  for (const [kind, list] of [['valid', events], ['dlq', dlq]] as const) {
    for (const output of list) {
      if (!rawByCoordinates.has(output.source)) {
        orphans.push(`${output.at} names ${output.source}`);
        continue;
      }
      const entry = outputsBySource.get(output.source);
      if (entry) entry.push({ kind, output });
      else outputsBySource.set(output.source, [{ kind, output }]);
    }
  }

  const rawNotIngested: string[] = [];
  const ingestedTwiceSamples: string[] = [];
  const contentMismatches: string[] = [];
  const misrouted: Record<string, number> = {};
  const deadLetterReasons: Record<string, number> = {};
  const validEvents: PipelineEvent[] = [];
  let ingestedTwice = 0;
  let valid = 0;
  let deadLettered = 0;
  for (const r of raw) {
    const expected = sentById.get(r.id)?.expected ?? 'unknown (not sent by the drill)';
    if (expected === 'valid' && r.event) validEvents.push(r.event);
    const outputs = outputsBySource.get(r.coordinates) ?? [];
    if (outputs.length === 0) {
      rawNotIngested.push(`${r.coordinates} (${r.id})`);
      continue;
    }
    if (outputs.length > 1) {
      ingestedTwice += outputs.length - 1;
      if (ingestedTwiceSamples.length < SAMPLES) ingestedTwiceSamples.push(`${r.coordinates} (${r.id}) -> ${outputs.map((o) => o.output.at).join(', ')}`);
    }
    const first = outputs[0]!;
    if (first.kind === 'valid') {
      valid++;
      if (first.output.eventId !== r.id) contentMismatches.push(`${first.output.at} carries ${first.output.eventId}, its source ${r.coordinates} is ${r.id}`);
    } else {
      deadLettered++;
      const reason = first.output.reason ?? '?';
      deadLetterReasons[reason] = (deadLetterReasons[reason] ?? 0) + 1;
    }
    const actual = first.kind === 'valid' ? 'valid' : (first.output.reason ?? '?');
    if (actual !== expected) misrouted[`${expected} -> ${actual}`] = (misrouted[`${expected} -> ${actual}`] ?? 0) + 1;
  }
  return {
    acked: acked.length,
    unacknowledged: sent.length - acked.length,
    rawIn: raw.length,
    valid,
    deadLettered,
    ackedNotOnRawTopic,
    rawNotIngested,
    ingestedTwice,
    ingestedTwiceSamples,
    rawCopiesFromRetries,
    rawCopiesUnexplained,
    orphans,
    contentMismatches,
    misrouted,
    deadLetterReasons,
    validEvents,
  };
}
