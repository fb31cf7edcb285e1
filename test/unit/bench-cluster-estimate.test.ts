import { describe, expect, it } from 'vitest';
import { DEFAULT_ASSUMPTIONS, estimateCluster, eventsPerBusyCore } from '../../bench/clusterEstimate.ts';

// Hand-computed: ingest 20 µs, aggregate 12.5 µs, broker 10 µs of CPU per event, 500 bytes written per event.
const costs = { ingestCpuSecondsPerEvent: 20e-6, aggregateCpuSecondsPerEvent: 12.5e-6, brokerCpuSecondsPerEvent: 10e-6, brokerBytesPerEvent: 500 };

describe('bench cluster estimate', () => {
  it('turns CPU seconds per event into events per busy core', () => {
    expect(eventsPerBusyCore(20e-6)).toBeCloseTo(50_000, 6);
    expect(eventsPerBusyCore(0)).toBe(Infinity);
  });

  it('sizes a small cluster: instances at 60 % of a core, twice as many partitions, the replication factor as the least brokers', () => {
    // ingest 100k × 20 µs = 2 cores / 0.6 = 3.3 → 4; aggregate 1.25 / 0.6 = 2.1 → 3; broker 100k × 10 µs × 3 / 0.6 = 5 cores, 143 MiB/s: 1 broker, but 3 replicas.
    expect(estimateCluster(100_000, costs)).toEqual({ eventsPerSec: 100_000, ingestInstances: 4, aggregateInstances: 3, serviceCores: 7, partitions: { raw: 8, events: 6 }, brokerCores: 5, brokers: 3, brokersBoundBy: 'replication' });
  });

  it('lets bytes or CPU decide the brokers of a large one', () => {
    // 10M: ingest 200 / 0.6 → 334, aggregate 125 / 0.6 → 209; broker CPU 500 cores → 63 brokers of 8; bytes 15 GB/s over 200 MiB/s → 72.
    expect(estimateCluster(10_000_000, costs)).toMatchObject({ ingestInstances: 334, aggregateInstances: 209, partitions: { raw: 668, events: 418 }, brokerCores: 500, brokers: 72, brokersBoundBy: 'bytes' });
    expect(estimateCluster(10_000_000, { ...costs, brokerBytesPerEvent: 100 })).toMatchObject({ brokers: 63, brokersBoundBy: 'cpu' });
  });

  it('does not round an exact fit up by a floating-point hair', () => {
    // 30,000 × 20 µs = 0.6 cores = exactly one instance at 60 %.
    expect(estimateCluster(30_000, costs).ingestInstances).toBe(1);
  });

  it('refuses a utilisation outside (0, 1]', () => {
    expect(() => estimateCluster(1, costs, { ...DEFAULT_ASSUMPTIONS, targetUtilisation: 0 })).toThrow(RangeError);
  });
});
