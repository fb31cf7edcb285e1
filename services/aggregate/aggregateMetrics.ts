import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

export function createAggregateMetrics(registry: Registry) {
  return {
    events: new Counter({ name: 'aggregate_events_total', help: 'Validated events aggregated, by outcome (exposed, moved, conflict, metric_counted, metric_counted_early, metric_recounted, unknown_experiment, value_overflow, ...)', labelNames: ['outcome'], registers: [registry] }),
    users: new Gauge({ name: 'aggregate_users_in_state', help: 'Users held in memory, by input partition', labelNames: ['partition'], registers: [registry] }),
    restoreSeconds: new Histogram({ name: 'aggregate_restore_seconds', help: 'Time to rebuild a partition state from its changelog', buckets: [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60], registers: [registry] }),
    lag: new Gauge({ name: 'aggregate_consumer_lag', help: 'Validated events not yet aggregated, by partition', labelNames: ['partition'], registers: [registry] }),
    late: new Counter({ name: 'aggregate_late_events_total', help: 'Events not taken because their event time was behind the partition watermark (stream time - aggregate.latenessMs), by kind; batch reanalysis includes them', labelNames: ['kind'], registers: [registry] }),
    heldEvents: new Gauge({ name: 'aggregate_held_metric_events', help: 'Metric events held until the partition watermark passes them (the memory cost of the lateness), by input partition', labelNames: ['partition'], registers: [registry] }),
    watermarkLag: new Gauge({ name: 'aggregate_watermark_lag_seconds', help: 'Wall-clock time minus the partition watermark, by input partition', labelNames: ['partition'], registers: [registry] }),
    deltas: new Counter({ name: 'aggregate_deltas_total', help: 'Aggregate delta records emitted', registers: [registry] }),
  };
}
