import type { StoreCodec } from '../common/changeloggedStore.ts';
import type { ExperimentDefinition } from '../common/experimentDefinition.ts';
import type { ExperimentStatus } from '../common/experimentStatus.ts';
import type { AuditRecord } from '../common/contracts/audit.ts';

/**
 * What the control service must remember between commands, changelogged so a restarted or
 * replacing instance continues the same audit chain and still refuses replays:
 * each experiment's status, its current definition (the authoritative copy: versions are
 * numbered and changes judged against it, never against what exp.definitions happens to
 * hold), the nonces seen while a command bearing them could still be fresh, and the last
 * audit record (the head of the chain).
 */
export interface ControlDefinition {
  version: number;
  appliedAt: number;
  definition: ExperimentDefinition;
  commandId: string;
  definedBy: string;
  auditSequence: number;
}

export interface ControlState {
  statuses: Map<string, ExperimentStatus>;
  definitions: Map<string, ControlDefinition>;
  /** nonce -> issuedAt of the command that used it. */
  nonces: Map<string, number>;
  lastAudit: AuditRecord | undefined;
}

const STATUS = 'status:';
const DEFINITION = 'definition:';
const NONCE = 'nonce:';
const LAST_AUDIT = 'audit:last';

export function emptyControlState(): ControlState {
  return { statuses: new Map(), definitions: new Map(), nonces: new Map(), lastAudit: undefined };
}

/** Rebuilds the state from the changelog's latest value per key (statuses written before the lifecycle existed lack its fields: they read as null). */
export function controlStateFromChangelog(entries: Iterable<[string, unknown]>): ControlState {
  const state = emptyControlState();
  for (const [key, value] of entries) {
    if (key.startsWith(STATUS)) state.statuses.set(key.slice(STATUS.length), Object.assign({ startedAt: null, concludedAt: null, decision: null }, value as ExperimentStatus));
    else if (key.startsWith(DEFINITION)) state.definitions.set(key.slice(DEFINITION.length), value as ControlDefinition);
    else if (key.startsWith(NONCE)) state.nonces.set(key.slice(NONCE.length), value as number);
    else if (key === LAST_AUDIT) state.lastAudit = value as AuditRecord;
  }
  return state;
}

export const changelogKeys = {
  status: (experimentId: string) => STATUS + experimentId,
  definition: (experimentId: string) => DEFINITION + experimentId,
  nonce: (nonce: string) => NONCE + nonce,
  lastAudit: LAST_AUDIT,
};

export function decodeChangelogValue(value: Buffer): unknown {
  return JSON.parse(value.toString('utf8'));
}

export function encodeChangelogValue(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value));
}

export const controlChangelogCodec: StoreCodec<unknown> = { encode: encodeChangelogValue, decode: decodeChangelogValue };
