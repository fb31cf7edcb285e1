import { Kafka, logLevel as KafkaLogLevel, type LogEntry, type logCreator } from 'kafkajs';
import { installAbortedRecordFilter } from './abortedRecords.ts';
import type { Logger } from './logger.ts';

// Every client of this process reads committed records only (kafkajs alone lets records of
// some aborted transactions through: see abortedRecords.ts).
installAbortedRecordFilter();

/** kafkajs levels mapped onto pino methods, so broker chatter lands in the structured log. */
const LEVEL_METHOD: Record<number, 'error' | 'warn' | 'info' | 'debug'> = {
  [KafkaLogLevel.ERROR]: 'error',
  [KafkaLogLevel.WARN]: 'warn',
  [KafkaLogLevel.INFO]: 'info',
  [KafkaLogLevel.DEBUG]: 'debug',
};

function pinoLogCreator(logger: Logger): logCreator {
  return () =>
    ({ namespace, level, log }: LogEntry) => {
      const { message, ...extra } = log;
      logger[LEVEL_METHOD[level] ?? 'info']({ namespace, ...extra }, message);
    };
}

export interface KafkaClientOptions {
  brokers: readonly string[];
  clientId: string;
  logger: Logger;
  /** kafkajs's own verbosity; its INFO lines (joins, rebalances) are useful, DEBUG is very noisy. */
  level?: KafkaLogLevel;
}

export function createKafka(options: KafkaClientOptions): Kafka {
  return new Kafka({
    brokers: [...options.brokers],
    clientId: options.clientId,
    logLevel: options.level ?? KafkaLogLevel.WARN,
    logCreator: pinoLogCreator(options.logger.child({ module: 'kafkajs' })),
    // Capped at 5 s (kafkajs: 30 s) so a client reconnects within seconds of a broker's return.
    retry: { initialRetryTime: 100, maxRetryTime: 5_000, retries: 8 },
  });
}
