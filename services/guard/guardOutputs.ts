import { createHash, randomUUID, type KeyObject } from 'node:crypto';
import { eventSchemas } from '../common/eventSchemas.ts';
import { signPayload } from '../common/signing.ts';
import { frame } from '../common/wireFormat.ts';
import type { Signal } from './evaluate.ts';

/** Anomaly records and signed HALT commands, framed for their topics. */
export interface Signer {
  principal: string;
  privateKey: KeyObject;
}

export function anomalyRecord(experimentId: string, definitionVersion: number, signal: Signal, now: number, schemaId: number): Buffer {
  return frame(
    schemaId,
    eventSchemas().anomaly.toBuffer({
      anomalyId: `${experimentId}:${signal.incident}:v${definitionVersion}`,
      experimentId,
      type: signal.type,
      severity: signal.severity,
      variantId: signal.variantId,
      metric: signal.metric,
      definitionVersion,
      detectedAt: now,
      halted: signal.halt,
      evidence: JSON.stringify(signal.evidence),
    }),
  );
}

export interface HaltCommand {
  commandId: string;
  experimentId: string;
  action: 'HALT';
  reason: string;
  evidence: string;
  issuer: string;
  issuedAt: number;
  nonce: string;
  signature: string;
}

/** The command id is derived from the incident, so a repeated halt for it is recognisable downstream. */
export function haltCommand(experimentId: string, definitionVersion: number, signal: Signal, signer: Signer, now: number): HaltCommand {
  const unsigned = {
    commandId: createHash('sha256').update(`${experimentId}\u0000${signal.incident}\u0000${definitionVersion}`).digest('hex').slice(0, 32),
    experimentId,
    action: 'HALT' as const,
    reason: signal.reason,
    evidence: JSON.stringify(signal.evidence),
    issuer: signer.principal,
    issuedAt: now,
    nonce: randomUUID(),
  };
  return { ...unsigned, signature: signPayload(unsigned, signer.privateKey) };
}

export function encodeCommand(command: HaltCommand, schemaId: number): Buffer {
  return frame(schemaId, eventSchemas().controlCommand.toBuffer(command));
}
