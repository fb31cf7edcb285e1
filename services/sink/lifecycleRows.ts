import { createHash } from 'node:crypto';
import { experimentStatuses } from '../common/contracts/state.ts';
import { DefinitionLedger } from '../common/definitionRecord.ts';
import type { Keyring } from '../common/keyring.ts';
import type { Logger } from '../common/logger.ts';
import type { RowMapper } from './rowMappers.ts';

/**
 * exp.definitions and exp.state as ClickHouse rows: every version of every definition the
 * control service published (verified like every other reader does, so a record someone else
 * wrote never becomes a definition an analyst reproduces results with), every lifecycle move,
 * and each conclusion (definition version, decision, who, when) in a table of its own.
 */
export function definitionRows(keyring: Keyring, topic: string, logger: Logger): RowMapper {
  const ledger = new DefinitionLedger(keyring, topic);
  return (r, out) => {
    const verdict = ledger.apply(r.value, r.offset);
    if (!verdict.ok) {
      logger.warn({ topic: r.topic, offset: r.offset, rejection: verdict.rejection, experimentId: verdict.experimentId }, 'sink: a definition record the control service did not publish is not stored');
      return;
    }
    const d = verdict.published;
    const json = JSON.stringify(d.definition);
    push(out, 'experiment_definitions', {
      experiment_id: d.experimentId, version: d.version, applied_at: d.appliedAt, definition: json, definition_sha256: createHash('sha256').update(json).digest('hex'),
      command_id: d.commandId, defined_by: d.definedBy, audit_sequence: d.auditSequence, publisher: d.publisher, ...coordinates(r),
    });
  };
}

export const statusRows: RowMapper = (r, out) => {
  if (!r.value) return;
  const decoded = experimentStatuses.decode(r.value);
  if (!decoded.ok) return decoded;
  const s = decoded.value;
  push(out, 'experiment_status_log', {
    experiment_id: s.experimentId, status: s.status, since: s.since, set_by: s.by, reason: s.reason, command_id: s.commandId, definition_version: s.definitionVersion, audit_sequence: s.auditSequence,
    started_at: s.startedAt, concluded_at: s.concludedAt, decision: s.decision, ...coordinates(r),
  });
  if (s.status === 'CONCLUDED') {
    push(out, 'experiment_conclusions', {
      experiment_id: s.experimentId, definition_version: s.definitionVersion, decision: s.decision ?? '', concluded_by: s.by, concluded_at: s.concludedAt ?? s.since, reason: s.reason,
      command_id: s.commandId, audit_sequence: s.auditSequence, started_at: s.startedAt, ...coordinates(r),
    });
  }
};

type Rows = Parameters<RowMapper>[1];

function push(out: Rows, table: string, row: Record<string, string | number | boolean | null>): void {
  const rows = out.get(table);
  if (rows) rows.push(row);
  else out.set(table, [row]);
}

function coordinates(r: Parameters<RowMapper>[0]): Record<string, string | number> {
  return { kafka_topic: r.topic, kafka_partition: r.partition, kafka_offset: r.offset };
}
