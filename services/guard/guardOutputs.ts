import { createHash } from 'node:crypto';
import { signedCommand, type CommandSigner } from '../common/commandSigning.ts';
import type { Anomaly } from '../common/contracts/anomalies.ts';
import type { ControlCommand } from '../common/contracts/controlCommands.ts';
import type { Signal } from './evaluate.ts';

/** Anomaly records and signed HALT commands for the guard's signals. */
export type Signer = CommandSigner;

export function anomalyRecord(experimentId: string, definitionVersion: number, signal: Signal, now: number): Anomaly {
  return {
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
  };
}

/** The command id is derived from the incident, so a repeated halt for it is recognisable downstream. */
export function haltCommand(experimentId: string, definitionVersion: number, signal: Signal, signer: Signer, now: number): ControlCommand {
  const commandId = createHash('sha256').update(`${experimentId}\u0000${signal.incident}\u0000${definitionVersion}`).digest('hex').slice(0, 32);
  return signedCommand({ commandId, experimentId, action: 'HALT', reason: signal.reason, evidence: JSON.stringify(signal.evidence) }, signer.principal, signer.privateKey, now);
}
