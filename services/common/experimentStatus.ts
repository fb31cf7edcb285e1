import type { Kafka } from 'kafkajs';
import { CompactedTopicTable } from './compactedTopicTable.ts';
import { eventSchemas } from './eventSchemas.ts';
import type { ExperimentState } from './experimentLifecycle.ts';
import type { Logger } from './logger.ts';
import { decodeEvolved } from './schemaHistory.ts';
import { frame, unframe } from './wireFormat.ts';

/** An experiment's state on exp.state (schemas/ExperimentStatus.avsc), set only by the control service. */
export interface ExperimentStatus {
  experimentId: string;
  status: ExperimentState;
  since: number;
  by: string;
  reason: string;
  commandId: string;
  definitionVersion: number;
  auditSequence: number;
  /** When it was started; null before (and on records older than the lifecycle). */
  startedAt: number | null;
  /** When it was concluded; nothing at or after this event time counts. */
  concludedAt: number | null;
  /** ship:<variant>, no-ship or inconclusive, once concluded. */
  decision: string | null;
}

export function encodeExperimentStatus(status: ExperimentStatus, schemaId: number): Buffer {
  return frame(schemaId, eventSchemas().experimentStatus.toBuffer(status));
}

export function decodeExperimentStatus(value: Buffer): ExperimentStatus | undefined {
  const framed = unframe(value);
  if (!framed.ok) return undefined;
  return decodeEvolved('experimentStatus', framed.body) as ExperimentStatus;
}

/** Every experiment's current status, kept up to date from exp.state (what ingest, aggregate, guard and the admin API read). */
export function experimentStatusTable(kafka: Kafka, topic: string, logger: Logger, onChange?: (experimentId: string, status: ExperimentStatus | null) => void): CompactedTopicTable<ExperimentStatus> {
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
    decode: (key, value) => {
      if (!key) return undefined;
      if (!value) return { key: key.toString('utf8'), value: null };
      const status = decodeExperimentStatus(value);
      return status ? { key: status.experimentId, value: status } : undefined;
    },
  });
  return table;
}
