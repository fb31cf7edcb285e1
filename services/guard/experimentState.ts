import type { StoreCodec } from '../common/changeloggedStore.ts';
import { mergeDelta, type VariantTotals } from '../common/experimentTotals.ts';

export { mergeDelta };

/**
 * The guard's global view of one experiment: the sum of every delta so far, per variant
 * (users, conflicts, per-metric Σx, Σx², conversions) and recent per-minute exposures, plus
 * the incidents already raised (so each is raised, and halted, once).
 */
export interface Incident {
  raisedAt: number;
  halted: boolean;
  definitionVersion: number;
}

export interface ExperimentState {
  experimentId: string;
  variants: Record<string, VariantTotals>;
  incidents: Record<string, Incident>;
}

export function emptyExperimentState(experimentId: string): ExperimentState {
  return { experimentId, variants: {}, incidents: {} };
}

export function encodeExperimentState(state: ExperimentState): Buffer {
  return Buffer.from(JSON.stringify(state));
}

export function decodeExperimentState(buffer: Buffer): ExperimentState {
  return JSON.parse(buffer.toString('utf8')) as ExperimentState;
}

export const experimentStateCodec: StoreCodec<ExperimentState> = { encode: encodeExperimentState, decode: decodeExperimentState };
