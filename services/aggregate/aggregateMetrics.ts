import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

export function createAggregateMetrics(registry: Registry) {
  return {
    events: new Counter({ name: 'aggregate_events_total', help: 'Validated events aggregated, by outcome (exposed, conflict, metric_counted, unknown_experiment, value_overflow, ...)', labelNames: ['outcome'], registers: [registry] }),
    users: new Gauge({ name: 'aggregate_users_in_state', help: 'Users held in memory, by input partition', labelNames: ['partition'], registers: [registry] }),
    restoreSeconds: new Histogram({ name: 'aggregate_restore_seconds', help: 'Time to rebuild a partition state from its changelog', buckets: [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60], registers: [registry] }),
    lag: new Gauge({ name: 'aggregate_consumer_lag', help: 'Validated events not yet aggregated, by partition', labelNames: ['partition'], registers: [registry] }),
    deltas: new Counter({ name: 'aggregate_deltas_total', help: 'Aggregate delta records emitted', registers: [registry] }),
  };
}
