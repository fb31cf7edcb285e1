import { randomUUID, type KeyObject } from 'node:crypto';
import { eventSchemas } from '../common/eventSchemas.ts';
import { signPayload } from '../common/signing.ts';
import { frame } from '../common/wireFormat.ts';
import type { CommandFields } from './verifyCommand.ts';

/** A signed ControlCommand, ready for exp.control. */
export function signedCommand(fields: { experimentId: string; action: 'HALT' | 'RESUME' | 'DEFINE'; reason: string; evidence?: string }, issuer: string, privateKey: KeyObject, now = Date.now()): CommandFields {
  const unsigned = { commandId: randomUUID(), experimentId: fields.experimentId, action: fields.action, reason: fields.reason, evidence: fields.evidence ?? '{}', issuer, issuedAt: now, nonce: randomUUID() };
  return { ...unsigned, signature: signPayload(unsigned, privateKey) };
}

export function encodeCommandRecord(command: CommandFields, schemaId: number): Buffer {
  return frame(schemaId, eventSchemas().controlCommand.toBuffer(command));
}
