import { defineContract } from './codec.ts';

/** A signal on exp.anomalies (schemas/Anomaly.avsc), keyed by experiment ("*": pipeline-wide). */
export interface Anomaly {
  anomalyId: string;
  experimentId: string;
  type: string;
  severity: string;
  variantId: string | null;
  metric: string | null;
  definitionVersion: number;
  detectedAt: number;
  halted: boolean;
  /** JSON. */
  evidence: string;
}

export const anomalies = defineContract<Anomaly>({ topic: 'anomalies', schema: 'anomaly', key: (a) => a.experimentId });

/** A pipeline-wide data-quality warning (experimentId "*", no variant, metric or definition), never a halt. */
export function pipelineWarning(anomalyId: string, type: string, evidence: unknown): Anomaly {
  return { anomalyId, experimentId: '*', type, severity: 'warning', variantId: null, metric: null, definitionVersion: 0, detectedAt: Date.now(), halted: false, evidence: JSON.stringify(evidence) };
}
