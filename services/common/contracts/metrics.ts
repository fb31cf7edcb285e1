import { defineContract } from './codec.ts';

/** What producers put on exp.metrics.raw (schemas/MetricEvent.avsc), keyed by user id. */
export interface MetricEvent {
  eventId: string;
  userId: string;
  metric: string;
  value: number;
  eventTime: number;
}

export const metricsRaw = defineContract<MetricEvent>({ topic: 'metricsRaw', schema: 'metric', key: (e) => e.userId });
