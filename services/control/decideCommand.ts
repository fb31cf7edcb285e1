import { isDeepStrictEqual } from 'node:util';
import { definitionChanges } from '../common/definitionChanges.ts';
import { isPipelineError } from '../common/errors.ts';
import { parseDefinition, type ExperimentDefinition } from '../common/experimentDefinition.ts';
import { parseDecision, transition, type ExperimentState, type LifecycleAction } from '../common/experimentLifecycle.ts';
import type { ExperimentStatus } from '../common/experimentStatus.ts';
import type { Keyring } from '../common/keyring.ts';
import { appendRecord } from '../common/auditChain.ts';
import type { AuditFields, AuditRecord } from '../common/contracts/audit.ts';
import type { ControlDefinition, ControlState } from './controlState.ts';
import type { ControlCommand } from '../common/contracts/controlCommands.ts';
import { verifyCommand, type Freshness } from './verifyCommand.ts';

/**
 * One record from exp.control in, one decision out: the audit record (always), the
 * experiment's new status when an accepted command moves it through its lifecycle
 * (services/common/experimentLifecycle.ts), and a new definition version when an accepted
 * DEFINE changes the definition. Pure; the caller applies the result to its state and writes
 * it out in one transaction.
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
  command: Partial<ControlCommand> | { undecodable: string };
  apiRefusal: string | undefined;
}

export interface Decision {
  audit: AuditRecord;
  status: ExperimentStatus | undefined;
  /** A new version of a definition, to publish on exp.definitions (the service signs it with the control key). */
  definition: { experimentId: string; published: ControlDefinition } | undefined;
  /** The nonce to remember (every verified command's, accepted or not). */
  nonce: { nonce: string; issuedAt: number } | undefined;
}

export interface DecideContext {
  keyring: Keyring;
  apiPrincipal: string;
  freshness: Freshness;
  now: number;
}

export function decideCommand(input: ControlInput, state: ControlState, context: DecideContext): Decision {
  const base = { sourceTopic: input.topic, sourcePartition: input.partition, sourceOffset: input.offset, decidedAt: context.now };
  const chain = (fields: Omit<AuditFields, 'sourceTopic' | 'sourcePartition' | 'sourceOffset' | 'decidedAt'>, overrides: Partial<AuditFields> = {}) => appendRecord(state.lastAudit, { ...base, ...fields, ...overrides });
  const nothing = { status: undefined, definition: undefined };

  if ('undecodable' in input.command) {
    return { audit: chain({ decision: 'REJECTED', reason: `MALFORMED: ${input.command.undecodable}`, reasonCode: 'MALFORMED', commandId: null, experimentId: null, action: null, issuer: null }), ...nothing, nonce: undefined };
  }
  const command = input.command;
  const identity = { commandId: str(command.commandId), experimentId: str(command.experimentId), action: str(command.action), issuer: str(command.issuer) };
  const verdict = verifyCommand(command, context.keyring, state.nonces, context.now, context.freshness);
  if (!verdict.accepted) {
    return { audit: chain({ decision: 'REJECTED', reason: `${verdict.rejection}: ${verdict.detail}`, reasonCode: verdict.rejection, ...identity }), ...nothing, nonce: undefined };
  }
  const nonce = { nonce: command.nonce!, issuedAt: command.issuedAt! };
  const issuer = verdict.principal;

  if (input.apiRefusal !== undefined) {
    // A refusal note: only the admin API may write one; it changes nothing but the audit log.
    if (issuer !== context.apiPrincipal) {
      return { audit: chain({ decision: 'REJECTED', reason: `MALFORMED: a refusal note signed by ${issuer}, not by the admin API`, reasonCode: 'MALFORMED', ...identity }), ...nothing, nonce };
    }
    const refusal = { sourceTopic: ADMIN_API_SOURCE, sourcePartition: -1, sourceOffset: -1 };
    return { audit: chain({ decision: 'REJECTED', reason: `API_${input.apiRefusal}: ${command.reason}`, reasonCode: `API_${input.apiRefusal}`, ...identity }, refusal), ...nothing, nonce };
  }

  const experimentId = command.experimentId!;
  const action = command.action as LifecycleAction;
  const reason = command.reason ?? '';
  const current = state.statuses.get(experimentId);
  const held = state.definitions.get(experimentId);
  const sequence = (state.lastAudit?.sequence ?? 0) + 1;
  // The code is a field of the audit record and leads its text (`CODE: detail`) for people reading the log.
  const rejected = (code: string, detail: string): Decision => ({ audit: chain({ decision: 'REJECTED', reason: `${code}: ${detail}`, reasonCode: code, ...identity }), ...nothing, nonce });
  const accepted = (code: AcceptedCode, text: string, outputs: Partial<Pick<Decision, 'status' | 'definition'>> = {}): Decision => ({ audit: chain({ decision: 'ACCEPTED', reason: `${code.replace(UNCHANGED_SUFFIX, '')}: ${text}`, reasonCode: code, ...identity }), ...nothing, ...outputs, nonce });
  const next = (status: ExperimentState, changes: Partial<ExperimentStatus> = {}): ExperimentStatus => ({
    experimentId,
    status,
    since: context.now,
    by: issuer,
    reason,
    commandId: command.commandId!,
    definitionVersion: held?.version ?? current?.definitionVersion ?? 0,
    auditSequence: sequence,
    startedAt: current?.startedAt ?? null,
    concludedAt: current?.concludedAt ?? null,
    decision: current?.decision ?? null,
    ...changes,
  });

  // The one transition table decides whether the move exists, and where it leads.
  let to: ExperimentState;
  try {
    to = transition(experimentId, current?.status, action);
  } catch (err) {
    if (isPipelineError(err, 'LIFECYCLE_ILLEGAL_MOVE')) return rejected(String(err.context.code), err.message);
    throw err;
  }
  switch (action) {
    case 'DEFINE':
      return define();
    case 'HALT':
      if (current?.status === to) return accepted('HALT_UNCHANGED', `already halted since ${new Date(current.since).toISOString()} by ${current.by}; no change (${reason})`);
      return accepted('HALT', reason, { status: next(to) });
    case 'START':
      return accepted('START', reason, { status: next(to, { startedAt: context.now }) });
    case 'CONCLUDE': {
      let requested: unknown;
      try {
        requested = (JSON.parse(command.payload ?? 'null') as { decision?: unknown } | null)?.decision;
      } catch {
        requested = undefined;
      }
      const decision = parseDecision(requested, held?.definition.variants.map((v) => v.id) ?? []);
      if (!decision.ok) return rejected('INVALID_DECISION', decision.problem);
      return accepted('CONCLUDE', `${decision.decision}: ${reason}`, { status: next(to, { concludedAt: context.now, decision: decision.decision }) });
    }
    default:
      return accepted(action, reason, { status: next(to) });
  }

  /** A new definition, or a new version of one: validated, and judged against the one in force. */
  function define(): Decision {
    let definition: ExperimentDefinition;
    try {
      if (typeof command.payload !== 'string') throw new Error('a DEFINE command carries the definition as its payload; this one has none');
      let value: unknown;
      try {
        value = JSON.parse(command.payload);
      } catch (err) {
        throw new Error(`the payload is not JSON: ${(err as Error).message}`);
      }
      definition = parseDefinition(value, `DEFINE ${command.commandId}`);
    } catch (err) {
      return rejected('INVALID_DEFINITION', (err as Error).message.replace(/\n\s*/g, ' ').slice(0, 1_000));
    }
    if (definition.id !== experimentId) return rejected('INVALID_DEFINITION', `the definition is of '${definition.id}', the command of '${experimentId}'`);
    if (held && isDeepStrictEqual(held.definition, definition)) return accepted('DEFINE_UNCHANGED', `unchanged at version ${held.version}: ${reason}`);
    const changes = held ? definitionChanges(held.definition, definition) : [];
    if (current?.status === 'RUNNING' || current?.status === 'HALTED') {
      const invalidating = changes.filter((c) => c.invalidates).map((c) => c.field);
      if (invalidating.length > 0) {
        return rejected('INVALIDATING_CHANGE', `${experimentId} is ${current.status}; changing ${invalidating.join(', ')} would invalidate the statistics it has collected. While it runs only thresholds, tolerances, the plan and the wording may change; to change the design, conclude it and define a new experiment`);
      }
    }
    const version = (held?.version ?? 0) + 1;
    const published: ControlDefinition = { version, appliedAt: context.now, definition, commandId: command.commandId!, definedBy: issuer, auditSequence: sequence };
    const what = held ? `changed ${changes.map((c) => c.field).join(', ')}` : current ? `first definition of a ${current.status} experiment` : 'new experiment, DRAFT';
    return accepted('DEFINE', `version ${version} (${what}): ${reason}`, { definition: { experimentId, published }, ...(current ? {} : { status: next('DRAFT', { definitionVersion: version }) }) });
  }
}

/**
 * The code of an accepted decision: the action, or `<action>_UNCHANGED` for one that changed
 * nothing (a HALT of a halted experiment, a DEFINE identical to the version in force).
 */
export type AcceptedCode = LifecycleAction | 'HALT_UNCHANGED' | 'DEFINE_UNCHANGED';
const UNCHANGED_SUFFIX = /_UNCHANGED$/;

/** Nonces whose commands can no longer be fresh: they need not be remembered. */
export function expiredNonces(nonces: ReadonlyMap<string, number>, now: number, freshness: Freshness): string[] {
  const oldest = now - freshness.maxAgeMs - freshness.maxSkewMs;
  return [...nonces].filter(([, issuedAt]) => issuedAt < oldest).map(([nonce]) => nonce);
}

function str(value: unknown): string | null {
  return typeof value === 'string' && value !== '' ? value.slice(0, 500) : null;
}
