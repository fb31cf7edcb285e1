import type { ExperimentDelta } from '../aggregateDelta.ts';
import { defineContract } from './codec.ts';

/** An additive per-variant delta on exp.aggregates (schemas/AggregateDelta.avsc), keyed by experiment, with the input range it covers. */
export interface AggregateDeltaRecord extends ExperimentDelta {
  sourceTopic: string;
  sourcePartition: number;
  firstOffset: number;
  lastOffset: number;
  emittedAt: number;
}

export const aggregates = defineContract<AggregateDeltaRecord>({ topic: 'aggregates', schema: 'aggregateDelta', key: (d) => d.experimentId });
