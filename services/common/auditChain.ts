import { createHash } from 'node:crypto';
import type { AuditFields, AuditRecord } from './contracts/audit.ts';
import { canonicalEncoding } from './signing.ts';

/**
 * The append-only, hash-chained audit log: each record carries the SHA-256 of the previous
 * record and its own (over its canonical encoding without recordHash). Changing, removing or
 * reordering any record breaks the chain at that point, which `verifyChain` reports.
 */
export const GENESIS_HASH = '0'.repeat(64);

export function hashRecord(record: Omit<AuditRecord, 'recordHash'>): string {
  // Records written before reasonCode existed were hashed without it (they decode with null):
  // an absent code is left out, so their hashes still hold; a code that is there is covered.
  const { reasonCode, ...rest } = record;
  const hashed = reasonCode === null || reasonCode === undefined ? rest : record;
  return createHash('sha256').update(canonicalEncoding(hashed as unknown as Record<string, unknown>)).digest('hex');
}

export function appendRecord(previous: AuditRecord | undefined, fields: AuditFields): AuditRecord {
  const unhashed = { ...fields, sequence: (previous?.sequence ?? 0) + 1, previousHash: previous?.recordHash ?? GENESIS_HASH };
  return { ...unhashed, recordHash: hashRecord(unhashed) };
}

export type ChainCheck = { ok: true; records: number } | { ok: false; sequence: number; position: number; problem: string };

/** Walks the records in the order given and reports the first broken link. */
export function verifyChain(records: readonly AuditRecord[]): ChainCheck {
  let previousHash = GENESIS_HASH;
  for (const [position, record] of records.entries()) {
    const expectedSequence = position + 1;
    const { recordHash, ...rest } = record;
    if (hashRecord(rest) !== recordHash) return { ok: false, sequence: record.sequence, position, problem: 'the record was modified (its hash does not match its content)' };
    if (record.previousHash !== previousHash) return { ok: false, sequence: record.sequence, position, problem: 'the link to the previous record is broken (a record was removed, inserted or reordered)' };
    if (record.sequence !== expectedSequence) return { ok: false, sequence: record.sequence, position, problem: `sequence ${record.sequence} where ${expectedSequence} was expected` };
    previousHash = recordHash;
  }
  return { ok: true, records: records.length };
}
