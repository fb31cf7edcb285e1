import type avro from 'avsc';
import { frame, unframe, type Unframed } from '../wireFormat.ts';
import type { Decoded } from './codec.ts';
import { exposuresRaw } from './exposures.ts';
import { metricsRaw } from './metrics.ts';
import { tagDecoded, unreachable, type PipelineEvent } from './pipelineEvent.ts';

/**
 * The one place records written by producers are read: by the writer schema the framing
 * names (which ingest fetches from the registry), resolved to the pipeline's reader schema,
 * so producers on an older compatible schema keep working. Every other topic is the
 * pipeline's own and is read through its contract's codec.
 */
export type RawTopicRole = 'exposuresRaw' | 'metricsRaw';

export const RAW_CONTRACTS = { exposuresRaw, metricsRaw } as const;

export type RawBodyProblem = 'UNDECODABLE_BODY' | 'TRUNCATED_BODY' | 'TRAILING_BYTES';

export type RawRead = { ok: true; event: PipelineEvent } | { ok: false; problem: RawBodyProblem; detail: string };

/** Header and body of a producer's payload, or which part of the framing is wrong. */
export function splitFrame(payload: Buffer | null): Unframed {
  return unframe(payload);
}

/** Arbitrary bytes behind a Confluent header, as a misbehaving producer might send them (the chaos drill's bad traffic). */
export function frameArbitrary(schemaId: number, body: Buffer): Buffer {
  return frame(schemaId, body);
}

/** How a writer schema's bodies read as the topic's reader schema; throws when they cannot. */
export function rawResolver(role: RawTopicRole, writer: avro.Type): avro.Resolver {
  return RAW_CONTRACTS[role].type().createResolver(writer);
}

export function readRawBody(role: RawTopicRole, body: Buffer, resolver: avro.Resolver): RawRead {
  let decoded: { value: unknown; offset: number };
  try {
    decoded = RAW_CONTRACTS[role].type().decode(body, 0, resolver);
  } catch (err) {
    return { ok: false, problem: 'UNDECODABLE_BODY', detail: (err as Error).message };
  }
  if (decoded.offset === -1) return { ok: false, problem: 'TRUNCATED_BODY', detail: `the ${body.length}-byte body ends inside the record` };
  if (decoded.offset < body.length) return { ok: false, problem: 'TRAILING_BYTES', detail: `${body.length - decoded.offset} byte(s) after the record` };
  return { ok: true, event: tagged(role, decoded.value) };
}

/** The kind of event a raw topic carries. */
export function rawKind(role: RawTopicRole): PipelineEvent['kind'] {
  switch (role) {
    case 'exposuresRaw':
      return 'exposure';
    case 'metricsRaw':
      return 'metric';
    default:
      return unreachable(role);
  }
}

/** `value` is a record just decoded (tagged in place). */
function tagged(role: RawTopicRole, value: unknown): PipelineEvent {
  return tagDecoded(value as object, rawKind(role));
}

/** A raw record written with the pipeline's current schema (the drill's own traffic), tagged with its kind. */
export function decodeRaw(role: RawTopicRole, value: Buffer | null): Decoded<PipelineEvent> {
  const decoded = RAW_CONTRACTS[role].decode(value);
  return decoded.ok ? { ...decoded, value: tagged(role, decoded.value) } : decoded;
}
