import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { openClickHouse } from '../../services/common/clickhouse.ts';
import { eventSchemas } from '../../services/common/eventSchemas.ts';
import { applyMigrations } from '../../services/common/migrations.ts';
import { frame } from '../../services/common/wireFormat.ts';
import { appendRecord } from '../../services/common/auditChain.ts';
import { type AuditRecord } from '../../services/common/contracts/audit.ts';
import { auditRows, type TableRows } from '../../services/sink/rowMappers.ts';
import { runExpctl } from '../support/childService.ts';
import { stackEndpoints } from '../support/stack.ts';

const ROOT = resolve(import.meta.dirname, '../..');

describe('expctl audit verify on the audit log stored in ClickHouse', () => {
  it('passes an intact chain and names the first broken link after a record is modified, deleted or reordered', async () => {
    if (stackEndpoints().clickhouseUrl) return; // prepares a chDB directory of its own
    const dataDir = mkdtempSync(join(tmpdir(), 'audit-chdb-'));
    const open = () => openClickHouse({ username: 'default', password: '', database: 'expstream', dataDir });
    const ch = await open();
    await applyMigrations(ch.client, resolve(ROOT, 'infra/clickhouse/migrations'));
    let previous: AuditRecord | undefined;
    const tables: TableRows = new Map();
    for (let i = 0; i < 6; i++) {
      previous = appendRecord(previous, { decidedAt: Date.UTC(2026, 10, 25, 12, 0, i, 123), decision: i % 2 ? 'REJECTED' : 'ACCEPTED', reason: `decision ${i}`, commandId: `c${i}`, experimentId: 'exp', action: 'HALT', issuer: 'alice', sourceTopic: 'exp.control', sourcePartition: 0, sourceOffset: i });
      // Through the sink's own row mapping, as the sink stores them.
      auditRows({ topic: 'exp.audit', partition: 0, offset: String(i), value: frame(1, eventSchemas().audit.toBuffer(previous)) }, tables);
    }
    await ch.client.insert({ table: 'audit_log', format: 'JSONEachRow', values: tables.get('audit_log')! });
    await ch.close();

    const verify = () => runExpctl(['audit', 'verify', '--source', 'clickhouse'], { env: { ...process.env, CHDB_PATH: dataDir, CLICKHOUSE_URL: '', LOG_LEVEL: 'warn' } });
    const tamper = async (sql: string) => {
      const handle = await open();
      await handle.client.command({ query: sql, clickhouse_settings: { mutations_sync: '2' } });
      await handle.close();
    };

    const intact = await verify();
    expect(intact.stdout, intact.stderr).toMatch(/^audit chain intact: 6 record\(s\), head sequence 6/);
    expect(intact.status).toBe(0);

    await tamper("ALTER TABLE audit_log UPDATE reason = 'nothing to see' WHERE sequence = 4");
    const modified = await verify();
    expect(modified.stdout).toMatch(/BROKEN at record 4 of 6 \(sequence 4\): the record was modified/);
    expect(modified.status).toBe(1);
    await tamper("ALTER TABLE audit_log UPDATE reason = 'decision 3' WHERE sequence = 4");
    expect((await verify()).status).toBe(0);

    // Reordering: records 2 and 3 trade places (each is stored again under the other's sequence
    // number, which is the table's sort key, and the originals are deleted).
    const columns = 'previous_hash, record_hash, decided_at, decision, reason, command_id, experiment_id, action, issuer, source_topic, source_partition, source_offset, kafka_topic, kafka_partition';
    const swap = async () => {
      await tamper(`INSERT INTO audit_log (sequence, ${columns}, kafka_offset) SELECT if(sequence = 2, 3, 2), ${columns}, kafka_offset + 1000 FROM audit_log WHERE sequence IN (2, 3)`);
      await tamper('ALTER TABLE audit_log DELETE WHERE sequence IN (2, 3) AND kafka_offset < 1000');
      await tamper('ALTER TABLE audit_log UPDATE kafka_offset = kafka_offset - 1000 WHERE kafka_offset >= 1000');
    };
    await swap();
    const reordered = await verify();
    expect(reordered.stdout).toMatch(/BROKEN at record 2 of 6 \(sequence 2\): the record was modified/);
    expect(reordered.status).toBe(1);
    await swap();
    expect((await verify()).status).toBe(0);

    await tamper('ALTER TABLE audit_log DELETE WHERE sequence = 5');
    const deleted = await verify();
    expect(deleted.stdout).toMatch(/BROKEN at record 5 of 5 \(sequence 6\): the link to the previous record is broken/);
    expect(deleted.status).toBe(1);
  }, 120_000);
});
