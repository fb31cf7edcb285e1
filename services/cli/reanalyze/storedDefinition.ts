import type { ClickHouseClient } from '@clickhouse/client';
import { PipelineError } from '../../common/errors.ts';
import { parseDefinition, type ExperimentDefinition } from '../../common/experimentDefinition.ts';

/**
 * The definition of an experiment as ClickHouse stored it (experiment_definitions: every
 * version the control service published, verified by the sink), and its conclusion time if
 * it was concluded: what a batch recomputation needs to reproduce a result with the
 * definition that was in force.
 */
export interface StoredDefinition {
  version: number;
  definition: ExperimentDefinition;
  concludedAt: number | null;
}

export async function storedDefinition(client: ClickHouseClient, experimentId: string, version?: number): Promise<StoredDefinition> {
  const rows = await (await client.query({
    query: `SELECT version, definition FROM experiment_definitions FINAL
            WHERE experiment_id = {experiment:String} AND ({version:Int64} < 0 OR version = {version:Int64})
            ORDER BY version DESC LIMIT 1`,
    query_params: { experiment: experimentId, version: version ?? -1 },
    format: 'JSONEachRow',
  })).json<{ version: number; definition: string }>();
  const row = rows[0];
  if (!row) throw new PipelineError('INPUT_INVALID', `no ${version === undefined ? 'definition' : `version ${version} of the definition`} of '${experimentId}' in ClickHouse (experiment_definitions); is the sink running?`);
  const conclusion = await (await client.query({
    query: 'SELECT toString(toUnixTimestamp64Milli(concluded_at)) AS at FROM experiment_conclusions FINAL WHERE experiment_id = {experiment:String} LIMIT 1',
    query_params: { experiment: experimentId },
    format: 'JSONEachRow',
  })).json<{ at: string }>();
  return { version: Number(row.version), definition: parseDefinition(JSON.parse(row.definition), `experiment_definitions ${experimentId} v${row.version}`), concludedAt: conclusion[0] ? Number(conclusion[0].at) : null };
}
