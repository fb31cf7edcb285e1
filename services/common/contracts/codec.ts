import type avro from 'avsc';
import { eventSchemas, schemaText, type EventSchemas } from '../eventSchemas.ts';
import { decodeEvolved, SCHEMA_HISTORY, type EvolvedSchema } from '../schemaHistory.ts';
import type { SchemaRegistryClient } from '../schemaRegistryClient.ts';
import { valueSubject, type TopicNames, type TopicRole } from '../topics.ts';
import { encodeFramed, unframe } from '../wireFormat.ts';

/**
 * What every topic contract is made of: the Avro schema of schemas/*.avsc it writes, the
 * topic whose value subject registers it, how a record is keyed, and a codec that frames and
 * unframes in the Confluent wire format. Decoding answers with a result instead of throwing,
 * so a consumer decides what an unreadable record costs (see unreadablePolicy.ts) instead of
 * an exception deciding it for the whole partition.
 */
export type UnreadableReason =
  /** No value, or not in the Confluent wire format (empty, too short, wrong magic byte). */
  | 'UNFRAMED'
  /** A schema id the reader does not know (raw topics, whose writers register their own). */
  | 'UNKNOWN_SCHEMA'
  /** Framed, but the body is not a record of this schema or of any earlier version of it. */
  | 'UNDECODABLE';

export type Decoded<T> =
  | { ok: true; value: T; schemaId: number }
  | { ok: false; reason: UnreadableReason; detail: string; schemaId: number | null };

export interface ContractSpec<T> {
  /** The topic whose value subject (TopicNameStrategy) the schema is registered under. */
  topic: TopicRole;
  schema: keyof EventSchemas;
  /** The Kafka key a record of this topic is written with. */
  key(value: T): string | null;
  /** When the TypeScript value is not the Avro value as is (unions, fields added at decode time). */
  toAvro?(value: T): unknown;
  fromAvro?(raw: unknown): T;
}

export interface TopicContract<T> extends ContractSpec<T> {
  type(): avro.Type;
  /** Framed bytes to a typed value, or why not. */
  decode(value: Buffer | null): Decoded<T>;
  /** An unframed Avro body; throws when it is not one (for bodies a caller has unframed already). */
  decodeBody(body: Buffer): T;
  encodeBody(value: T): Buffer;
  encode(value: T, schemaId: number): Buffer;
  /** Registers the schema (once per registry and subject) and binds the id for encoding. */
  bind(registry: SchemaRegistryClient, topics: TopicNames): Promise<BoundContract<T>>;
}

export interface BoundContract<T> {
  topic: string;
  schemaId: number;
  encode(value: T): Buffer;
  /** The record for a producer or a transactional loop: keyed as the contract says. */
  message(value: T): { key: string | null; value: Buffer };
}

export function defineContract<T>(spec: ContractSpec<T>): TopicContract<T> {
  const type = () => eventSchemas()[spec.schema];
  const evolved = spec.schema in SCHEMA_HISTORY;
  const decodeBody = (body: Buffer): T => {
    const raw = evolved ? decodeEvolved(spec.schema as EvolvedSchema, body) : type().fromBuffer(body);
    return spec.fromAvro ? spec.fromAvro(raw) : (raw as T);
  };
  const avroOf = (value: T): unknown => (spec.toAvro ? spec.toAvro(value) : value);
  const encodeBody = (value: T): Buffer => type().toBuffer(avroOf(value));
  const encode = (value: T, schemaId: number) => encodeFramed(schemaId, type(), avroOf(value));
  return {
    ...spec,
    type,
    decodeBody,
    encodeBody,
    encode,
    decode(value) {
      const framed = unframe(value);
      if (!framed.ok) return { ok: false, reason: 'UNFRAMED', detail: `${framed.problem}: ${framed.detail}`, schemaId: null };
      try {
        return { ok: true, value: decodeBody(framed.body), schemaId: framed.schemaId };
      } catch (err) {
        return { ok: false, reason: 'UNDECODABLE', detail: `not a ${type().name?.split('.').pop() ?? spec.schema}: ${(err as Error).message.slice(0, 200)}`, schemaId: framed.schemaId };
      }
    },
    async bind(registry, topics) {
      const topic = topics[spec.topic];
      const schemaId = await registeredId(registry, valueSubject(topic), schemaText(type()));
      return { topic, schemaId, encode: (value) => encode(value, schemaId), message: (value) => ({ key: spec.key(value), value: encode(value, schemaId) }) };
    },
  };
}

/** The schema id a framed record names, when it is framed at all (for dead letters of records a reader refused). */
export function schemaIdOf(value: Buffer | null): number | null {
  const framed = unframe(value);
  return framed.ok ? framed.schemaId : null;
}

// Ids are immutable: one registration per registry, subject and schema text per process.
const registrations = new WeakMap<SchemaRegistryClient, Map<string, Promise<number>>>();

function registeredId(registry: SchemaRegistryClient, subject: string, text: string): Promise<number> {
  let ids = registrations.get(registry);
  if (!ids) registrations.set(registry, (ids = new Map()));
  const key = `${subject}\u0000${text}`;
  let id = ids.get(key);
  if (!id) {
    id = registry.register(subject, text);
    ids.set(key, id);
    // A failed registration (registry down) is tried again by the next caller.
    id.catch(() => ids.delete(key));
  }
  return id;
}
