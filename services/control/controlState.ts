import type { ExperimentStatus } from '../common/experimentStatus.ts';
import type { AuditRecord } from './auditChain.ts';

/**
 * What the control service must remember between commands, changelogged so a restarted or
 * replacing instance continues the same audit chain and still refuses replays:
 * each experiment's status, the nonces seen while a command bearing them could still be
 * fresh, and the last audit record (the head of the chain).
 */
export interface ControlState {
  statuses: Map<string, ExperimentStatus>;
  /** nonce -> issuedAt of the command that used it. */
  nonces: Map<string, number>;
  lastAudit: AuditRecord | undefined;
}

const STATUS = 'status:';
const NONCE = 'nonce:';
const LAST_AUDIT = 'audit:last';

export function emptyControlState(): ControlState {
  return { statuses: new Map(), nonces: new Map(), lastAudit: undefined };
}

/** Rebuilds the state from the changelog's latest value per key. */
export function controlStateFromChangelog(entries: ReadonlyMap<string, unknown>): ControlState {
  const state = emptyControlState();
  for (const [key, value] of entries) {
    if (key.startsWith(STATUS)) state.statuses.set(key.slice(STATUS.length), value as ExperimentStatus);
    else if (key.startsWith(NONCE)) state.nonces.set(key.slice(NONCE.length), value as number);
    else if (key === LAST_AUDIT) state.lastAudit = value as AuditRecord;
  }
  return state;
}

export const changelogKeys = {
  status: (experimentId: string) => STATUS + experimentId,
  nonce: (nonce: string) => NONCE + nonce,
  lastAudit: LAST_AUDIT,
};

export function decodeChangelogValue(value: Buffer): unknown {
  return JSON.parse(value.toString('utf8'));
}

export function encodeChangelogValue(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value));
}
