/**
 * A paper estimate of the cluster a target rate needs, from costs measured on one machine:
 * CPU seconds per event of ingest, of the aggregator and of the broker (process CPU time over
 * the events it handled), and bytes written to the broker per event. Pure arithmetic; every
 * assumption is a named field, so the README can state them and a reader can change them.
 *
 * - One service instance is one Node process: one busy core (its JavaScript runs on one
 *   thread; the CPU time measured includes its GC and I/O threads), run at `targetUtilisation`
 *   of that core to leave headroom for bursts, rebalances and restores.
 * - Every topic a stage reads has at least as many partitions as the stage has instances
 *   (a partition is read by one instance of a group), times `partitionsPerInstance` so the
 *   group can grow without repartitioning exp.events (which would move users' state).
 * - Broker CPU scales with the replication factor (a follower fetches and writes every byte
 *   the leader writes; the measured broker ran with replication factor 1), at the same
 *   utilisation, on brokers of `brokerCores` cores; and each broker takes at most
 *   `brokerWriteBytesPerSec` of replicated writes (disk and network). Whichever of CPU and
 *   bytes needs more brokers decides, and never fewer than the replication factor.
 */
export interface MeasuredCosts {
  ingestCpuSecondsPerEvent: number;
  aggregateCpuSecondsPerEvent: number;
  /** Broker CPU per event over producing, ingest and aggregate, replication factor 1. */
  brokerCpuSecondsPerEvent: number;
  /** Bytes the broker wrote per event (raw topics, exp.events, changelog, exp.aggregates), before replication. */
  brokerBytesPerEvent: number;
}

export interface EstimateAssumptions {
  targetUtilisation: number;
  partitionsPerInstance: number;
  replicationFactor: number;
  brokerCores: number;
  brokerWriteBytesPerSec: number;
}

export const DEFAULT_ASSUMPTIONS: EstimateAssumptions = Object.freeze({
  targetUtilisation: 0.6,
  partitionsPerInstance: 2,
  replicationFactor: 3,
  brokerCores: 8,
  brokerWriteBytesPerSec: 200 * 2 ** 20,
});

export interface ClusterSize {
  eventsPerSec: number;
  ingestInstances: number;
  aggregateInstances: number;
  /** Cores for the service instances (one each). */
  serviceCores: number;
  /** Partitions of each of the raw topics and of exp.events (and so of the aggregator's changelog). */
  partitions: { raw: number; events: number };
  brokerCores: number;
  brokers: number;
  /** What decided the broker count: CPU, bytes written, or the replication factor's minimum. */
  brokersBoundBy: 'cpu' | 'bytes' | 'replication';
}

/** Per busy core: events a fully used core handles per second, 1 / CPU seconds per event. */
export const eventsPerBusyCore = (cpuSecondsPerEvent: number): number => (cpuSecondsPerEvent > 0 ? 1 / cpuSecondsPerEvent : Infinity);

export function estimateCluster(eventsPerSec: number, costs: MeasuredCosts, assumptions: EstimateAssumptions = DEFAULT_ASSUMPTIONS): ClusterSize {
  const a = assumptions;
  if (!(a.targetUtilisation > 0 && a.targetUtilisation <= 1)) throw new RangeError('targetUtilisation must be in (0, 1]');
  const instances = (cpuSecondsPerEvent: number) => Math.max(1, Math.ceil((eventsPerSec * cpuSecondsPerEvent) / a.targetUtilisation - 1e-9));
  const ingestInstances = instances(costs.ingestCpuSecondsPerEvent);
  const aggregateInstances = instances(costs.aggregateCpuSecondsPerEvent);
  const brokerCores = (eventsPerSec * costs.brokerCpuSecondsPerEvent * a.replicationFactor) / a.targetUtilisation;
  const byCpu = Math.ceil(brokerCores / a.brokerCores - 1e-9);
  const byBytes = Math.ceil((eventsPerSec * costs.brokerBytesPerEvent * a.replicationFactor) / a.brokerWriteBytesPerSec - 1e-9);
  const brokers = Math.max(a.replicationFactor, byCpu, byBytes);
  return {
    eventsPerSec,
    ingestInstances,
    aggregateInstances,
    serviceCores: ingestInstances + aggregateInstances,
    partitions: { raw: ingestInstances * a.partitionsPerInstance, events: aggregateInstances * a.partitionsPerInstance },
    brokerCores: Math.ceil(brokerCores - 1e-9),
    brokers,
    brokersBoundBy: brokers === a.replicationFactor && byCpu < brokers && byBytes < brokers ? 'replication' : byCpu >= byBytes ? 'cpu' : 'bytes',
  };
}
