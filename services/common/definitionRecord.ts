import type { KeyObject } from 'node:crypto';
import { definitionRecords, type DefinitionRecord, type DefinitionRecordFields } from './contracts/definitions.ts';
import { parseDefinition, type PublishedDefinition } from './experimentDefinition.ts';
import type { Keyring } from './keyring.ts';
import { signPayload, verifyPayload } from './signing.ts';

/**
 * The records of exp.definitions (schemas/ExperimentDefinitionRecord.avsc) and how a reader
 * knows the control service published one.
 *
 * The control service signs every definition record it publishes with its own Ed25519 key
 * (a keyring principal with the control role), over the canonical encoding of all the
 * record's other fields: the definition, its version, the DEFINE command and the experimenter
 * behind it, and the audit record of the decision. A reader accepts a record only if that
 * signature verifies with the key the keyring gives the named publisher, and the publisher
 * holds the control role. Someone who can write the topic but does not hold the control
 * service's private key cannot make a record any reader accepts: not a new one, not an edited
 * copy of a real one, not one signed with some other principal's key.
 *
 * A genuine record can still be copied and written again later (a replay, e.g. to roll a
 * guardrail's tolerance back). The signature cannot tell; order can: the `DefinitionLedger`
 * accepts per experiment only versions above the highest it has accepted, so a replayed older
 * version is ignored and counted like a forgery. Limits, and why the topic is still locked
 * down with ACLs: the topic is compacted by key, so a foreign record with an experiment's key
 * will, once compaction runs, remove the genuine record it supersedes (a reader started after
 * that no longer sees the definition: the experiment stops being counted, it is not
 * falsified), and a replayed old version left as the latest record is then the one a fresh
 * reader accepts. The control service raises every foreign record as an anomaly when it is
 * written, and keeps the authoritative definitions in its own changelog.
 */
export type { DefinitionRecord, DefinitionRecordFields } from './contracts/definitions.ts';

/** A definition the control service published: verified, with where it came from. */
export interface VerifiedDefinition extends PublishedDefinition {
  commandId: string;
  definedBy: string;
  auditSequence: number;
  publisher: string;
}

export const DEFINITION_REJECTIONS = {
  UNDECODABLE: 'not a framed ExperimentDefinitionRecord',
  TOMBSTONE: 'a null value (a delete): only the control service retires a definition, and it never deletes one',
  UNSIGNED: 'no signature: not published by the control service',
  UNKNOWN_PUBLISHER: 'the publisher is not in the keyring',
  NOT_CONTROL: 'the publisher does not hold the control role',
  BAD_SIGNATURE: "the signature does not verify with the publisher's key (forged or altered)",
  INVALID_DEFINITION: 'the definition does not satisfy the definition schema',
  STALE_VERSION: 'a version at or below one already accepted (a replayed or out-of-order record)',
} as const;

export type DefinitionRejection = keyof typeof DEFINITION_REJECTIONS;

export type DefinitionVerdict = { ok: true; published: VerifiedDefinition } | { ok: false; rejection: DefinitionRejection; detail: string; experimentId: string | null; version: number | null };

export function signDefinitionRecord(fields: DefinitionRecordFields, privateKey: KeyObject): DefinitionRecord {
  return { ...fields, signature: signPayload(fields as unknown as Record<string, unknown>, privateKey) };
}

export function encodeDefinitionRecord(record: DefinitionRecord, schemaId: number): Buffer {
  return definitionRecords.encode(record, schemaId);
}

export function decodeDefinitionRecord(value: Buffer | null): DefinitionRecord | undefined {
  const decoded = definitionRecords.decode(value);
  return decoded.ok ? decoded.value : undefined;
}

/** Checks one record on its own: decodable, signed by a control principal of the keyring, a valid definition of the experiment it is keyed by. */
export function verifyDefinitionRecord(value: Buffer | null, keyring: Keyring, source: string): DefinitionVerdict {
  if (value === null) return { ok: false, rejection: 'TOMBSTONE', detail: DEFINITION_REJECTIONS.TOMBSTONE, experimentId: null, version: null };
  const record = decodeDefinitionRecord(value);
  if (!record) return { ok: false, rejection: 'UNDECODABLE', detail: DEFINITION_REJECTIONS.UNDECODABLE, experimentId: null, version: null };
  const claimed = { experimentId: record.experimentId, version: record.version };
  const reject = (rejection: DefinitionRejection, detail: string): DefinitionVerdict => ({ ok: false, rejection, detail, ...claimed });
  if (!record.signature || !record.publisher) return reject('UNSIGNED', DEFINITION_REJECTIONS.UNSIGNED);
  const publisher = keyring.principal(record.publisher);
  if (!publisher) return reject('UNKNOWN_PUBLISHER', `no principal '${record.publisher}' in the keyring`);
  if (!publisher.roles.has('control')) return reject('NOT_CONTROL', `${publisher.name} has ${[...publisher.roles].join(', ')}, not control`);
  if (!verifyPayload(record as unknown as Record<string, unknown> & { signature: string }, publisher.publicKey)) return reject('BAD_SIGNATURE', `the signature does not verify with ${publisher.name}'s key`);
  let definition;
  try {
    definition = parseDefinition(JSON.parse(record.definition), source);
  } catch (err) {
    return reject('INVALID_DEFINITION', (err as Error).message.slice(0, 500));
  }
  if (definition.id !== record.experimentId) return reject('INVALID_DEFINITION', `the definition is of '${definition.id}', the record of '${record.experimentId}'`);
  return {
    ok: true,
    published: {
      experimentId: record.experimentId,
      version: record.version,
      appliedAt: record.appliedAt,
      definition,
      commandId: record.commandId ?? '',
      definedBy: record.definedBy ?? '',
      auditSequence: record.auditSequence ?? 0,
      publisher: publisher.name,
    },
  };
}

/**
 * The definitions accepted so far from exp.definitions, read in offset order: a verified
 * record whose version is above the experiment's current one replaces it; anything else is
 * rejected with the reason. The one rule every reader (services, sink, the control service's
 * watch) applies.
 */
export class DefinitionLedger {
  private readonly current = new Map<string, VerifiedDefinition>();

  constructor(private readonly keyring: Keyring, private readonly source: string) {}

  apply(value: Buffer | null, offset: string): DefinitionVerdict {
    const verdict = verifyDefinitionRecord(value, this.keyring, `${this.source}@${offset}`);
    if (!verdict.ok) return verdict;
    const held = this.current.get(verdict.published.experimentId);
    if (held && verdict.published.version <= held.version) {
      return { ok: false, rejection: 'STALE_VERSION', detail: `version ${verdict.published.version} of ${held.experimentId}, which is already at version ${held.version}`, experimentId: held.experimentId, version: verdict.published.version };
    }
    this.current.set(verdict.published.experimentId, verdict.published);
    return verdict;
  }

  get(experimentId: string): VerifiedDefinition | undefined {
    return this.current.get(experimentId);
  }
}
