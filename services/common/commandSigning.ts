import { randomUUID, type KeyObject } from 'node:crypto';
import type { ControlCommand } from './contracts/controlCommands.ts';
import { signPayload } from './signing.ts';

/**
 * How a control command is signed, for every issuer (guard, admin API, CLI): Ed25519 over the
 * canonical encoding of its signed fields. The control service verifies with the same fields.
 */
export interface CommandSigner {
  principal: string;
  privateKey: KeyObject;
}

/**
 * The fields a command's signature covers: all but the signature, and the payload only when
 * there is one, so commands signed before the payload field existed verify unchanged.
 */
export function signedFields(command: Partial<ControlCommand>): Record<string, unknown> {
  const { signature: _signature, payload, ...rest } = command;
  return payload === null || payload === undefined ? rest : { ...rest, payload };
}

export interface CommandRequest {
  experimentId: string;
  action: string;
  reason: string;
  evidence?: string;
  payload?: string;
  /** A derived id makes a repeated command recognisable downstream (the guard's halts); random otherwise. */
  commandId?: string;
}

/** A signed ControlCommand, ready for exp.control. */
export function signedCommand(request: CommandRequest, issuer: string, privateKey: KeyObject, now = Date.now()): ControlCommand {
  const unsigned = { commandId: request.commandId ?? randomUUID(), experimentId: request.experimentId, action: request.action, reason: request.reason, evidence: request.evidence ?? '{}', issuer, issuedAt: now, nonce: randomUUID(), payload: request.payload ?? null };
  return { ...unsigned, signature: signPayload(signedFields(unsigned), privateKey) };
}
