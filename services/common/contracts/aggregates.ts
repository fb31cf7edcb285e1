import type { ExperimentDelta, MetricDelta } from '../aggregateDelta.ts';
import { defineContract } from './codec.ts';

/** An additive per-variant delta on exp.aggregates (schemas/AggregateDelta.avsc), keyed by experiment, with the input range it covers. */
export interface AggregateDeltaRecord extends ExperimentDelta {
  sourceTopic: string;
  sourcePartition: number;
  firstOffset: number;
  lastOffset: number;
  emittedAt: number;
}

/** A ratio metric's Σy, Σy², Σxy as the schema carries them: beside the variants, only where one is not 0. */
interface RatioSums {
  variantId: string;
  metric: string;
  sumY: number;
  sumSquaresY: number;
  sumXY: number;
}

type AvroAggregateDelta = Omit<AggregateDeltaRecord, 'variants'> & {
  variants: (Omit<AggregateDeltaRecord['variants'][number], 'metrics'> & { metrics: Omit<MetricDelta, 'sumY' | 'sumSquaresY' | 'sumXY'>[] })[];
  ratioSums: RatioSums[];
};

const ratioKey = (variantId: string, metric: string) => `${variantId}\u0000${metric}`;

function toAvro(d: AggregateDeltaRecord): AvroAggregateDelta {
  const ratioSums: RatioSums[] = [];
  const variants = d.variants.map((v) => ({
    ...v,
    metrics: v.metrics.map(({ sumY, sumSquaresY, sumXY, ...m }) => {
      if (sumY !== 0 || sumSquaresY !== 0 || sumXY !== 0) ratioSums.push({ variantId: v.variantId, metric: m.metric, sumY, sumSquaresY, sumXY });
      return m;
    }),
  }));
  return { ...d, variants, ratioSums };
}

/** Records written before ratio metrics (AggregateDelta v1, read through schemas/history) have no ratioSums: every one is 0. */
function fromAvro(raw: unknown): AggregateDeltaRecord {
  const { ratioSums = [], ...d } = raw as AvroAggregateDelta;
  const sums = new Map(ratioSums.map((r) => [ratioKey(r.variantId, r.metric), r]));
  return {
    ...d,
    variants: d.variants.map((v) => ({
      ...v,
      metrics: v.metrics.map((m) => {
        const r = sums.get(ratioKey(v.variantId, m.metric));
        return { ...m, sumY: r?.sumY ?? 0, sumSquaresY: r?.sumSquaresY ?? 0, sumXY: r?.sumXY ?? 0 };
      }),
    })),
  };
}

export const aggregates = defineContract<AggregateDeltaRecord>({ topic: 'aggregates', schema: 'aggregateDelta', key: (d) => d.experimentId, toAvro, fromAvro });
