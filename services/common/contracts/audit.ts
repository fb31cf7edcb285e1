import { defineContract } from './codec.ts';

/** A decision of the control service on exp.audit (schemas/AuditRecord.avsc), keyed by sequence, hash-chained (see ../auditChain.ts). */
export interface AuditFields {
  decidedAt: number;
  decision: 'ACCEPTED' | 'REJECTED';
  reason: string;
  /** The reason's code (STALE, BAD_SIGNATURE, HALT, HALT_UNCHANGED, ...); null on records written before the field existed (their text starts with it). */
  reasonCode?: string | null;
  commandId: string | null;
  experimentId: string | null;
  action: string | null;
  issuer: string | null;
  sourceTopic: string;
  sourcePartition: number;
  sourceOffset: number;
}

export interface AuditRecord extends AuditFields {
  sequence: number;
  previousHash: string;
  recordHash: string;
}

export const auditRecords = defineContract<AuditRecord>({ topic: 'audit', schema: 'audit', key: (a) => String(a.sequence) });

/** The version a DEFINE decision published or kept, read back from its audit reason (`DEFINE: version 3 (...)` / `DEFINE: unchanged at version 3: ...`). */
export function definedVersion(reason: string): { version: number; changed: boolean } | undefined {
  const match = /^DEFINE: (?:version (\d+) |unchanged at version (\d+):)/.exec(reason);
  if (!match) return undefined;
  return match[1] !== undefined ? { version: Number(match[1]), changed: true } : { version: Number(match[2]), changed: false };
}
