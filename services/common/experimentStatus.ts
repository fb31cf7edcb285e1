import type { Kafka } from 'kafkajs';
import type { Registry } from 'prom-client';
import { CompactedTopicTable } from './compactedTopicTable.ts';
import { experimentStatuses, type ExperimentStatus } from './contracts/state.ts';
import { UnreadableRecords } from './contracts/unreadablePolicy.ts';
import type { Logger } from './logger.ts';

export type { ExperimentStatus } from './contracts/state.ts';

export function encodeExperimentStatus(status: ExperimentStatus, schemaId: number): Buffer {
  return experimentStatuses.encode(status, schemaId);
}

/** Undefined when the value is not a framed ExperimentStatus. */
export function decodeExperimentStatus(value: Buffer): ExperimentStatus | undefined {
  const decoded = experimentStatuses.decode(value);
  return decoded.ok ? decoded.value : undefined;
}

/** Every experiment's current status, kept up to date from exp.state (what ingest, aggregate, guard and the admin API read). */
export interface StatusTableOptions {
  onChange?(experimentId: string, status: ExperimentStatus | null): void;
  /** Where unreadable records are counted (`unreadable_records_total`); they are logged either way. */
  metrics?: Registry;
}

export function experimentStatusTable(kafka: Kafka, topic: string, logger: Logger, options: StatusTableOptions = {}): CompactedTopicTable<ExperimentStatus> {
  const { onChange } = options;
  const unreadable = options.metrics ? new UnreadableRecords(options.metrics, logger) : undefined;
  const table: CompactedTopicTable<ExperimentStatus> = new CompactedTopicTable<ExperimentStatus>({
    kafka,
    topic,
    logger,
    onChange: (experimentId, status, offset) => {
      // Each move once it is in force here (not the history read at start): an operator can see
      // when this process began acting on a halt or a conclusion, and tests wait for it.
      if (table.ready) logger.info({ experimentId, status: status?.status ?? null, definitionVersion: status?.definitionVersion ?? null, by: status?.by ?? null, offset }, 'experiment.state: in force');
      onChange?.(experimentId, status);
    },
    decode: (key, value, offset, partition) => {
      if (!key) return undefined;
      if (!value) return { key: key.toString('utf8'), value: null };
      const decoded = experimentStatuses.decode(value);
      if (decoded.ok) return { key: decoded.value.experimentId, value: decoded.value };
      // The policy's table says skip (the experiment keeps its status): counted and logged, never silent.
      if (unreadable) unreadable.handle('state', { topic, partition, offset }, decoded);
      else logger.warn({ topic, partition, offset, reason: decoded.reason, detail: decoded.detail }, 'unreadable_record: skipped');
      return undefined;
    },
  });
  return table;
}
