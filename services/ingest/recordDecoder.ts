import avro from 'avsc';
import { writesBranchVerbatim } from '../common/contracts/events.ts';
import type { PipelineEvent } from '../common/contracts/pipelineEvent.ts';
import { rawKind, rawResolver, readRawBody, splitFrame, type RawTopicRole } from '../common/contracts/rawEvents.ts';
import type { SchemaRegistryClient } from '../common/schemaRegistryClient.ts';
import { valueSubject } from '../common/topics.ts';
import type { Rejection } from './dlqReasons.ts';

/**
 * Turns raw bytes from a raw topic into a typed event, or says precisely why not.
 * The writer schema comes from the registry by the id in the framing (cached: ids are
 * immutable); the event is read with the pipeline's own reader schema through Avro
 * resolution, so producers on an older compatible schema keep working. Registry outages
 * throw (retriable) instead of condemning records.
 */
export type Decoded =
  /** `body`: the event's Avro body when its writer schema is the pipeline's own for its kind (it can go on as it is: encodeValidatedWithEventBody). */
  | { ok: true; event: PipelineEvent; schemaId: number; body?: Buffer }
  | { ok: false; rejection: Rejection; schemaId: number | null };

interface WriterSchema {
  type: avro.Type;
  subjects: Set<string>;
}

/** Unknown ids are re-checked after this long: a schema may be registered meanwhile. */
const UNKNOWN_ID_RECHECK_MS = 10_000;

export class RecordDecoder {
  private readonly writers = new Map<number, WriterSchema>();
  /**
   * Lookups under way, by id: records decoded concurrently (a batch's first records after a
   * start, or a new schema's) share one registry round trip instead of each asking.
   */
  private readonly lookups = new Map<number, Promise<WriterSchema | undefined>>();
  private readonly unknownIds = new Map<number, number>();
  /** By topic, then schema id: built once, as every record of a raw topic is read through one. */
  private readonly resolvers = new Map<string, Map<number, ReadPlan | Error>>();
  private readonly subjects = new Map<string, string>();

  constructor(
    private readonly registry: SchemaRegistryClient,
    /** Which raw contract each topic is read with. */
    private readonly roles: ReadonlyMap<string, RawTopicRole>,
    private readonly maxPayloadBytes: number,
  ) {}

  async decode(topic: string, payload: Buffer | null): Promise<Decoded> {
    const known = this.decodeKnown(topic, payload);
    if (known) return known;
    // decodeKnown answers for every record but one framed with a schema id not yet looked up.
    const { schemaId } = splitFrame(payload) as Extract<ReturnType<typeof splitFrame>, { ok: true }>;
    const writer = await this.writerSchema(schemaId);
    if (!writer) return reject('UNKNOWN_SCHEMA_ID', `schema id ${schemaId} is not registered`, schemaId);
    return this.decodeKnown(topic, payload)!;
  }

  /**
   * The same answer as `decode`, without waiting, when the record's writer schema is already
   * known (all but the first records of each schema id); undefined when it must be looked up.
   * Most records go this way, and not awaiting each one keeps a batch off the microtask queue.
   */
  decodeKnown(topic: string, payload: Buffer | null): Decoded | undefined {
    if (payload && payload.length > this.maxPayloadBytes) {
      return reject('PAYLOAD_TOO_LARGE', `${payload.length} bytes; the limit is ${this.maxPayloadBytes}`, null);
    }
    const framed = splitFrame(payload);
    if (!framed.ok) return reject(framed.problem, framed.detail, null);
    const { schemaId, body } = framed;
    const writer = this.writers.get(schemaId);
    if (!writer) return undefined;
    const subject = this.subjectOf(topic);
    if (!writer.subjects.has(subject)) {
      return reject('SCHEMA_NOT_FOR_TOPIC', `schema id ${schemaId} is registered under ${[...writer.subjects].join(', ') || 'no live subject'}, not ${subject}`, schemaId);
    }
    const role = this.roles.get(topic);
    if (!role) throw new Error(`no raw contract for topic ${topic}`);
    const plan = this.readPlan(topic, schemaId, role, writer.type);
    if (plan instanceof Error) return reject('SCHEMA_NOT_READABLE', plan.message, schemaId);
    const read = readRawBody(role, body, plan.resolver);
    if (!read.ok) return reject(read.problem, read.detail, schemaId);
    return plan.verbatim ? { ok: true, event: read.event, schemaId, body } : { ok: true, event: read.event, schemaId };
  }

  private async writerSchema(id: number): Promise<WriterSchema | undefined> {
    const known = this.writers.get(id);
    if (known) return known;
    const unknownSince = this.unknownIds.get(id);
    if (unknownSince !== undefined && Date.now() - unknownSince < UNKNOWN_ID_RECHECK_MS) return undefined;
    let lookup = this.lookups.get(id);
    if (!lookup) {
      lookup = this.lookUp(id).finally(() => this.lookups.delete(id));
      this.lookups.set(id, lookup);
    }
    return lookup;
  }

  private async lookUp(id: number): Promise<WriterSchema | undefined> {
    const [text, subjects] = await Promise.all([this.registry.schemaById(id), this.registry.subjectsOfId(id)]);
    if (text === undefined) {
      this.unknownIds.set(id, Date.now());
      return undefined;
    }
    const writer = { type: avro.Type.forSchema(JSON.parse(text) as avro.Schema), subjects: new Set((subjects ?? []).map((s) => s.subject)) };
    this.writers.set(id, writer);
    this.unknownIds.delete(id);
    return writer;
  }

  private subjectOf(topic: string): string {
    let subject = this.subjects.get(topic);
    if (subject === undefined) this.subjects.set(topic, (subject = valueSubject(topic)));
    return subject;
  }

  private readPlan(topic: string, id: number, role: RawTopicRole, writer: avro.Type): ReadPlan | Error {
    let ofTopic = this.resolvers.get(topic);
    if (!ofTopic) this.resolvers.set(topic, (ofTopic = new Map()));
    let plan = ofTopic.get(id);
    if (!plan) {
      try {
        plan = { resolver: rawResolver(role, writer), verbatim: writesBranchVerbatim(writer, rawKind(role)) };
      } catch (err) {
        plan = err as Error;
      }
      ofTopic.set(id, plan);
    }
    return plan;
  }
}

/** How a writer schema's bodies are read on a topic, and whether they can be passed on as they are. */
interface ReadPlan {
  resolver: avro.Resolver;
  verbatim: boolean;
}

function reject(reason: Rejection['reason'], message: string, schemaId: number | null): Decoded {
  return { ok: false, rejection: { reason, message }, schemaId };
}
