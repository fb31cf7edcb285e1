import type { ExperimentState } from '../experimentLifecycle.ts';
import { defineContract } from './codec.ts';

/** An experiment's state on exp.state (schemas/ExperimentStatus.avsc), keyed by experiment, set only by the control service. */
export interface ExperimentStatus {
  experimentId: string;
  status: ExperimentState;
  since: number;
  by: string;
  reason: string;
  commandId: string;
  definitionVersion: number;
  auditSequence: number;
  /** When it was started; null before (and on records older than the lifecycle). */
  startedAt: number | null;
  /** When it was concluded; nothing at or after this event time counts. */
  concludedAt: number | null;
  /** ship:<variant>, no-ship or inconclusive, once concluded. */
  decision: string | null;
}

/** Records older than the lifecycle fields decode through schemas/history (new fields take their defaults). */
export const experimentStatuses = defineContract<ExperimentStatus>({ topic: 'state', schema: 'experimentStatus', key: (s) => s.experimentId });
