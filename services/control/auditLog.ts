import { randomUUID } from 'node:crypto';
import type { Kafka } from 'kafkajs';
import { CompactedTopicTable } from '../common/compactedTopicTable.ts';
import type { HealthReport, HealthSource } from '../common/health.ts';
import type { Logger } from '../common/logger.ts';
import { auditRecords, type AuditRecord } from '../common/contracts/audit.ts';
import type { UnreadableRecords } from '../common/contracts/unreadablePolicy.ts';

/**
 * The admin API's view of exp.audit, in bounded memory however long the log grows: the newest
 * `kept` records in memory, and a sparse index (the offset of every `indexEvery`-th sequence,
 * built while the topic is read at start and kept up to date) from which older pages are read
 * back from the topic on demand, one page read at a time. Sequences are contiguous from 1 and
 * exp.audit has one partition, so a sequence's neighbourhood is found by its index entry.
 */
export interface AuditLogOptions {
  kafka: Kafka;
  topic: string;
  logger: Logger;
  /** Records kept in memory (the newest). */
  kept: number;
  /** One index entry per this many sequences. */
  indexEvery?: number;
  /** Records looked at, at most, to fill one page (matters with a filter). */
  scanLimit?: number;
  /** Page reads from the topic that may wait while one runs; more are refused (AuditLogBusy). */
  maxWaitingReads?: number;
  readTimeoutMs?: number;
  /** Called with each new record as it is read. */
  onRecord?(record: AuditRecord): void;
  /** Counts and logs records that do not decode (contracts/unreadablePolicy.ts). */
  unreadable: UnreadableRecords;
}

export interface AuditPage {
  /** In sequence order. */
  records: AuditRecord[];
  /** Pass as `after` for the next page; null when this page reached the newest record. */
  next: number | null;
  /** The newest sequence known. */
  head: number;
}

/** Too many page reads from the topic at once: try again shortly. */
export class AuditLogBusy extends Error {}

export class AuditLog implements HealthSource {
  private readonly table: CompactedTopicTable<AuditRecord>;
  private readonly chunkOffsets = new Map<number, string>();
  private firstChunk: number | undefined;
  private lastSequence = 0;
  private readonly indexEvery: number;
  private readonly scanLimit: number;
  private reads: Promise<unknown> = Promise.resolve();
  private waitingReads = 0;

  constructor(private readonly options: AuditLogOptions) {
    this.indexEvery = options.indexEvery ?? 1_000;
    this.scanLimit = options.scanLimit ?? 10_000;
    this.table = new CompactedTopicTable<AuditRecord>({
      kafka: options.kafka,
      topic: options.topic,
      logger: options.logger,
      retain: options.kept,
      decode: (_key, value, offset, partition) => {
        const record = this.decode(value, partition, offset);
        return record ? { key: String(record.sequence), value: record } : undefined;
      },
      onChange: (_key, record, offset) => {
        if (!record) return;
        this.index(record.sequence, offset);
        this.lastSequence = Math.max(this.lastSequence, record.sequence);
        options.onRecord?.(record);
      },
    });
  }

  get ready(): boolean {
    return this.table.ready;
  }

  /** The newest sequence read (0 before the first record). */
  get head(): number {
    return this.lastSequence;
  }

  health(now?: number): HealthReport {
    return this.table.health(now);
  }

  start(): Promise<void> {
    return this.table.start();
  }

  async stop(): Promise<void> {
    await this.table.stop();
    await this.reads.catch(() => {});
  }

  /** The newest `limit` records (of one experiment, if given) that are in memory, oldest first. */
  newest(limit: number, experimentId?: string): AuditRecord[] {
    const found: AuditRecord[] = [];
    const oldest = this.oldestInMemory();
    for (let s = this.lastSequence; s >= oldest && found.length < limit; s--) {
      const record = this.table.get(String(s));
      if (record && (experimentId === undefined || record.experimentId === experimentId)) found.push(record);
    }
    return found.reverse();
  }

  /** Up to `limit` records after sequence `after` (of one experiment, if given), from the whole log. */
  async page(after: number, limit: number, experimentId?: string): Promise<AuditPage> {
    const records: AuditRecord[] = [];
    const matches = (r: AuditRecord) => experimentId === undefined || r.experimentId === experimentId;
    let last = after;
    let scanned = 0;
    const full = () => records.length >= limit || scanned >= this.scanLimit;
    const memoryFrom = this.oldestInMemory();
    if (after + 1 < memoryFrom && after < this.lastSequence) {
      await this.readFromTopic(after + 1, (record) => {
        if (record.sequence <= last) return 'more';
        if (record.sequence >= memoryFrom) return 'done';
        last = record.sequence;
        scanned++;
        if (matches(record)) records.push(record);
        return full() ? 'done' : 'more';
      });
    }
    // Memory continues the page only where it joins on: records may have left it meanwhile.
    if (last + 1 >= this.oldestInMemory()) {
      for (let s = last + 1; s <= this.lastSequence && !full(); s++) {
        last = s;
        scanned++;
        const record = this.table.get(String(s));
        if (record && matches(record)) records.push(record);
      }
    }
    const head = this.lastSequence;
    return { records, next: last < head ? last : null, head };
  }

  private oldestInMemory(): number {
    return Math.max(1, this.lastSequence - this.table.size + 1);
  }

  private index(sequence: number, offset: string): void {
    const chunk = Math.floor((sequence - 1) / this.indexEvery);
    if (this.chunkOffsets.has(chunk)) return;
    this.chunkOffsets.set(chunk, offset);
    if (this.firstChunk === undefined || chunk < this.firstChunk) this.firstChunk = chunk;
  }

  /** Where to start reading for a sequence: the indexed offset at or before it. */
  private offsetFor(sequence: number): string {
    const chunk = Math.floor((sequence - 1) / this.indexEvery);
    if (this.firstChunk === undefined || chunk < this.firstChunk) return this.chunkOffsets.get(this.firstChunk ?? 0) ?? '0';
    for (let c = chunk; c >= this.firstChunk; c--) {
      const offset = this.chunkOffsets.get(c);
      if (offset !== undefined) return offset;
    }
    return '0';
  }

  private decode(value: Buffer | null, partition: number, offset: string): AuditRecord | undefined {
    const decoded = auditRecords.decode(value);
    if (decoded.ok) return decoded.value;
    this.options.unreadable.handle('audit', { topic: this.options.topic, partition, offset }, decoded);
    return undefined;
  }

  /** One read at a time; a few may wait, more are refused. */
  private readFromTopic(fromSequence: number, accept: (record: AuditRecord) => 'more' | 'done'): Promise<void> {
    if (this.waitingReads >= (this.options.maxWaitingReads ?? 4)) return Promise.reject(new AuditLogBusy('older audit pages are being read for other callers; try again in a moment'));
    this.waitingReads++;
    const read = this.reads.then(
      () => readTopicFrom(this.options.kafka, this.options.topic, this.offsetFor(fromSequence), accept, this.options.readTimeoutMs ?? 15_000, (value, offset) => this.decode(value, 0, offset)),
    ).finally(() => this.waitingReads--);
    this.reads = read.catch(() => {});
    return read;
  }
}


/**
 * Reads exp.audit (one partition) from an offset until `accept` says done or the end of the
 * log as it stood is reached, with a consumer of its own that commits nothing.
 */
async function readTopicFrom(kafka: Kafka, topic: string, offset: string, accept: (record: AuditRecord) => 'more' | 'done', timeoutMs: number, decode: (value: Buffer | null, offset: string) => AuditRecord | undefined): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  const ends = await admin.fetchTopicOffsets(topic).finally(() => admin.disconnect());
  const high = BigInt(ends.find((e) => e.partition === 0)?.high ?? '0');
  if (BigInt(offset) >= high) return;
  const consumer = kafka.consumer({ groupId: `expstream-audit-page-${randomUUID()}`, readUncommitted: false, maxWaitTimeInMs: 100, sessionTimeout: 10_000, heartbeatInterval: 3_000, retry: { retries: 2 } });
  let timer: NodeJS.Timeout | undefined;
  try {
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    await new Promise<void>((resolve, reject) => {
      timer = setTimeout(() => reject(new Error(`reading ${topic} from offset ${offset} took over ${timeoutMs} ms`)), timeoutMs);
      let finished = false;
      const finish = () => {
        finished = true;
        resolve();
      };
      consumer
        .run({
          autoCommit: false,
          eachBatch: async ({ batch, isStale, isRunning }) => {
            for (const message of batch.messages) {
              if (finished || !isRunning() || isStale()) return;
              if (BigInt(message.offset) < BigInt(offset)) continue;
              const record = decode(message.value, message.offset);
              if (record && accept(record) === 'done') return finish();
            }
            // The end of the log as fetched: a transaction's marker may follow the last record.
            if (BigInt(batch.lastOffset()) + 1n >= BigInt(batch.highWatermark)) finish();
          },
        })
        .then(() => consumer.seek({ topic, partition: 0, offset }))
        .catch(reject);
    });
  } finally {
    clearTimeout(timer);
    await consumer.disconnect().catch(() => {});
  }
}
