import type { ExperimentStatus } from '../common/experimentStatus.ts';
import { appendRecord, type AuditFields, type AuditRecord } from './auditChain.ts';
import type { ControlState } from './controlState.ts';
import type { Keyring } from './keyring.ts';
import { verifyCommand, type CommandFields, type Freshness } from './verifyCommand.ts';

/**
 * One record from exp.control in, one decision out: the audit record (always), and the
 * experiment's new status when an accepted command changes it. Pure; the caller applies the
 * result to its state and writes it out in one transaction.
 *
 * The admin API refuses callers it cannot authenticate or authorize before any command is
 * signed; it still reports each refusal here, as a note it signs itself with the header
 * API_REFUSAL_HEADER, so the refusal lands in the same audit chain. A note that does not
 * verify as the API's is treated as the forgery it is.
 */
export const API_REFUSAL_HEADER = 'expstream-api-refusal';
export const ADMIN_API_SOURCE = 'admin-api';

export interface ControlInput {
  topic: string;
  partition: number;
  offset: number;
  /** The decoded command, or why it could not be decoded. */
  command: Partial<CommandFields> | { undecodable: string };
  apiRefusal: string | undefined;
}

export interface Decision {
  audit: AuditRecord;
  status: ExperimentStatus | undefined;
  /** The nonce to remember (every verified command's, accepted or not). */
  nonce: { nonce: string; issuedAt: number } | undefined;
}

export interface DecideContext {
  keyring: Keyring;
  apiPrincipal: string;
  freshness: Freshness;
  now: number;
  definitionVersion(experimentId: string): number;
}

export function decideCommand(input: ControlInput, state: ControlState, context: DecideContext): Decision {
  const base = { sourceTopic: input.topic, sourcePartition: input.partition, sourceOffset: input.offset, decidedAt: context.now };
  const chain = (fields: Omit<AuditFields, 'sourceTopic' | 'sourcePartition' | 'sourceOffset' | 'decidedAt'>, overrides: Partial<AuditFields> = {}) => appendRecord(state.lastAudit, { ...base, ...fields, ...overrides });

  if ('undecodable' in input.command) {
    return { audit: chain({ decision: 'REJECTED', reason: `MALFORMED: ${input.command.undecodable}`, commandId: null, experimentId: null, action: null, issuer: null }), status: undefined, nonce: undefined };
  }
  const command = input.command;
  const identity = { commandId: str(command.commandId), experimentId: str(command.experimentId), action: str(command.action), issuer: str(command.issuer) };
  const verdict = verifyCommand(command, context.keyring, state.nonces, context.now, context.freshness);
  if (!verdict.accepted) {
    return { audit: chain({ decision: 'REJECTED', reason: `${verdict.rejection}: ${verdict.detail}`, ...identity }), status: undefined, nonce: undefined };
  }
  const nonce = { nonce: command.nonce!, issuedAt: command.issuedAt! };

  if (input.apiRefusal !== undefined) {
    // A refusal note: only the admin API may write one; it changes nothing but the audit log.
    if (verdict.principal !== context.apiPrincipal) {
      return { audit: chain({ decision: 'REJECTED', reason: `MALFORMED: a refusal note signed by ${verdict.principal}, not by the admin API`, ...identity }), status: undefined, nonce };
    }
    const refusal = { sourceTopic: ADMIN_API_SOURCE, sourcePartition: -1, sourceOffset: -1 };
    return { audit: chain({ decision: 'REJECTED', reason: `API_${input.apiRefusal}: ${command.reason}`, ...identity }, refusal), status: undefined, nonce };
  }

  const experimentId = command.experimentId!;
  const current = state.statuses.get(experimentId);
  const sequence = (state.lastAudit?.sequence ?? 0) + 1;
  const next = (status: ExperimentStatus['status']): ExperimentStatus => ({
    experimentId,
    status,
    since: context.now,
    by: verdict.principal,
    reason: command.reason ?? '',
    commandId: command.commandId!,
    definitionVersion: context.definitionVersion(experimentId),
    auditSequence: sequence,
  });
  switch (command.action) {
    case 'HALT':
      if (current?.status === 'HALTED') {
        return { audit: chain({ decision: 'ACCEPTED', reason: `HALT: already halted since ${new Date(current.since).toISOString()} by ${current.by}; no change (${command.reason})`, ...identity }), status: undefined, nonce };
      }
      return { audit: chain({ decision: 'ACCEPTED', reason: `HALT: ${command.reason}`, ...identity }), status: next('HALTED'), nonce };
    case 'RESUME':
      if (current?.status !== 'HALTED') {
        return { audit: chain({ decision: 'REJECTED', reason: `NOT_HALTED: ${experimentId} is ${current?.status ?? 'not known to the control plane'}; only a halted experiment can be resumed`, ...identity }), status: undefined, nonce };
      }
      return { audit: chain({ decision: 'ACCEPTED', reason: `RESUME: ${command.reason}`, ...identity }), status: next('RUNNING'), nonce };
    default:
      // DEFINE: the experimenter's signed approval of the experiment; it starts RUNNING unless it already has a status.
      return { audit: chain({ decision: 'ACCEPTED', reason: `DEFINE: ${command.reason}`, ...identity }), status: current ? undefined : next('RUNNING'), nonce };
  }
}

/** Nonces whose commands can no longer be fresh: they need not be remembered. */
export function expiredNonces(nonces: ReadonlyMap<string, number>, now: number, freshness: Freshness): string[] {
  const oldest = now - freshness.maxAgeMs - freshness.maxSkewMs;
  return [...nonces].filter(([, issuedAt]) => issuedAt < oldest).map(([nonce]) => nonce);
}

function str(value: unknown): string | null {
  return typeof value === 'string' && value !== '' ? value.slice(0, 500) : null;
}
