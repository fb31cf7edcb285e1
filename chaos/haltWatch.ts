import type { Kafka } from 'kafkajs';
import { experimentStatusTable, type ExperimentStatus } from '../services/common/experimentStatus.ts';
import type { Logger } from '../services/common/logger.ts';

/**
 * Follows exp.state as a feature-flag service would and resolves with the experiment's status
 * once it is HALTED, or undefined after `timeoutMs`.
 */
export async function watchForHalt(kafka: Kafka, stateTopic: string, logger: Logger, experimentId: string, timeoutMs: number): Promise<ExperimentStatus | undefined> {
  let onHalt: (status: ExperimentStatus) => void = () => {};
  const halted = new Promise<ExperimentStatus>((resolve) => (onHalt = resolve));
  const table = experimentStatusTable(kafka, stateTopic, logger, {
    onChange: (id, status) => {
      if (id === experimentId && status?.status === 'HALTED') onHalt(status);
    },
  });
  let timer: NodeJS.Timeout | undefined;
  try {
    await table.start();
    const now = table.get(experimentId);
    if (now?.status === 'HALTED') return now;
    return await Promise.race([halted, new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), timeoutMs)))]);
  } finally {
    clearTimeout(timer);
    await table.stop().catch(() => {});
  }
}
