import { randomUUID, type KeyObject } from 'node:crypto';
import { eventSchemas } from '../common/eventSchemas.ts';
import type { LifecycleAction } from '../common/experimentLifecycle.ts';
import { decodeEvolved } from '../common/schemaHistory.ts';
import { signPayload } from '../common/signing.ts';
import { frame } from '../common/wireFormat.ts';
import { signedFields, type CommandFields } from './verifyCommand.ts';

/** A signed ControlCommand, ready for exp.control; `payload` (JSON) only for the actions that carry one. */
export function signedCommand(fields: { experimentId: string; action: LifecycleAction; reason: string; evidence?: string; payload?: string }, issuer: string, privateKey: KeyObject, now = Date.now()): CommandFields {
  const unsigned = { commandId: randomUUID(), experimentId: fields.experimentId, action: fields.action, reason: fields.reason, evidence: fields.evidence ?? '{}', issuer, issuedAt: now, nonce: randomUUID(), payload: fields.payload ?? null };
  return { ...unsigned, signature: signPayload(signedFields(unsigned), privateKey) };
}

export function encodeCommandRecord(command: CommandFields, schemaId: number): Buffer {
  return frame(schemaId, eventSchemas().controlCommand.toBuffer({ ...command, payload: command.payload ?? null }));
}

/** A ControlCommand body written with this schema or an earlier version of it. */
export function decodeCommandBody(body: Buffer): CommandFields {
  return decodeEvolved('controlCommand', body) as CommandFields;
}
