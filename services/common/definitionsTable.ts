import type { Kafka } from 'kafkajs';
import { Counter, type Registry } from 'prom-client';
import { CompactedTopicTable } from './compactedTopicTable.ts';
import { DefinitionLedger, type DefinitionVerdict, type VerifiedDefinition } from './definitionRecord.ts';
import type { HealthReport, HealthSource } from './health.ts';
import type { Keyring } from './keyring.ts';
import type { Logger } from './logger.ts';

/**
 * The current experiment definitions, read from the compacted exp.definitions topic by
 * every instance that needs them (a global table: each reads all of it, no consumer group
 * sharing). `start` resolves once the topic has been read to its end as of start.
 *
 * Only definitions the control service published count: each record goes through a
 * DefinitionLedger (signature of a keyring principal with the control role, versions only
 * going up). Any other record is ignored, logged, counted in
 * `definitions_rejected_total{reason}` and handed to `onRejected`; the experiment keeps the
 * definition it had.
 */
export interface DefinitionsTableOptions {
  /** Whose signatures make a definition genuine: the keyring's control principals. */
  keyring: Keyring;
  /** Where the rejection counter is registered (shared by the tables of one process). */
  metrics?: Registry;
  onRejected?(rejection: Extract<DefinitionVerdict, { ok: false }>, offset: string): void;
}

export class DefinitionsTable implements HealthSource {
  private readonly table: CompactedTopicTable<VerifiedDefinition>;

  constructor(kafka: Kafka, topic: string, logger: Logger, options: DefinitionsTableOptions) {
    const ledger = new DefinitionLedger(options.keyring, topic);
    const rejected = options.metrics ? rejectionCounter(options.metrics) : undefined;
    this.table = new CompactedTopicTable<VerifiedDefinition>({
      kafka,
      topic,
      logger,
      // Written by the control service in its transactions (read committed).
      decode: (_key, value, offset) => {
        const verdict = ledger.apply(value, offset);
        if (verdict.ok) return { key: verdict.published.experimentId, value: verdict.published };
        rejected?.inc({ reason: verdict.rejection });
        logger.warn({ topic, offset, experimentId: verdict.experimentId, version: verdict.version, rejection: verdict.rejection, detail: verdict.detail }, 'definitions.rejected: a record not published by the control service is ignored');
        options.onRejected?.(verdict, offset);
        return undefined;
      },
      // Each new version once it is in force here (not the history read at start).
      onChange: (experimentId, definition, offset) => {
        if (this.table.ready) logger.info({ experimentId, version: definition?.version ?? null, offset }, 'definition: in force');
      },
    });
  }

  get(experimentId: string): VerifiedDefinition | undefined {
    return this.table.get(experimentId);
  }

  all(): VerifiedDefinition[] {
    return this.table.values();
  }

  health(now?: number): HealthReport {
    return this.table.health(now);
  }

  start(timeoutMs = 30_000): Promise<void> {
    return this.table.start(timeoutMs);
  }

  stop(): Promise<void> {
    return this.table.stop();
  }
}

/** One counter per registry, however many tables a process runs. */
function rejectionCounter(registry: Registry): Counter<'reason'> {
  const name = 'definitions_rejected_total';
  return (registry.getSingleMetric(name) as Counter<'reason'> | undefined) ?? new Counter({ name, help: 'Records on exp.definitions ignored because the control service did not publish them, by reason', labelNames: ['reason'], registers: [registry] });
}
