import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

/** What the ingest service counts: in, valid, dead-lettered by reason, lag and batch time. */
export function createIngestMetrics(registry: Registry) {
  return {
    records: new Counter({ name: 'ingest_records_total', help: 'Raw records handled, by source topic and outcome (valid or dlq)', labelNames: ['topic', 'outcome'], registers: [registry] }),
    deadLetters: new Counter({ name: 'ingest_dead_letters_total', help: 'Records sent to the dead-letter topic, by source topic and reason', labelNames: ['topic', 'reason'], registers: [registry] }),
    lag: new Gauge({ name: 'ingest_consumer_lag', help: 'Records not yet ingested, by source topic and partition (after the last committed batch)', labelNames: ['topic', 'partition'], registers: [registry] }),
    heldBack: new Counter({ name: 'ingest_records_held_back_total', help: 'Raw records left to be fetched again because their event time ran ahead of another raw partition with records waiting (event-time alignment), by source topic; a record can count more than once', labelNames: ['topic'], registers: [registry] }),
    batchSeconds: new Histogram({ name: 'ingest_batch_duration_seconds', help: 'Time to decode, validate and commit one batch', buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5], registers: [registry] }),
  };
}

export type IngestMetrics = ReturnType<typeof createIngestMetrics>;
