import { existsSync } from 'node:fs';
import { ClickHouseError } from '@clickhouse/client';
import type { Config } from '../../common/config.ts';
import { PipelineError, errorMessage } from '../../common/errors.ts';
import { analystQuerySettings, type QueryLimits } from './analystSettings.ts';
import type { StatementKind } from './analystPolicy.ts';
import { createQueryInspector, engineReason } from './inspectQuery.ts';
import { openEmbeddedReadOnly, openServerReadOnly, type ReadOnlyEngine, type Row } from './readOnlyEngine.ts';

/**
 * `expctl query`'s core: the statement is checked on the embedded engine's parse
 * (inspectQuery.ts), then run by an engine that can only read and whose limits the statement
 * cannot change: the embedded store opened with `readonly = 1` and the limits, or a server as
 * the dedicated read-only user (CLICKHOUSE_QUERY_USER) whose profile bounds the limits.
 */

export interface AnalystQueryResult {
  kind: StatementKind;
  rows: Row[];
}

/** The parser needs no data and no result-row limit (a tree dump has a line per node), only bounds. */
const PARSER_SETTINGS = { max_execution_time: 10, max_memory_usage: 256 * 1024 * 1024, allow_introspection_functions: 0 } as const;

export async function runAnalystQuery(sql: string, clickhouse: Config['clickhouse'], limits: QueryLimits): Promise<AnalystQueryResult> {
  const { parser, executor } = await openEngines(clickhouse, limits);
  try {
    await assertReadOnly(executor, clickhouse);
    const { canonical, kind } = await createQueryInspector(parser, clickhouse.database)(sql);
    try {
      const rows = kind === 'explain' ? await executor.explainRows(canonical) : await executor.rows(canonical);
      return { kind, rows };
    } catch (err) {
      throw new PipelineError('INPUT_INVALID', `query failed: ${engineReason(err)}`, { cause: err });
    }
  } finally {
    await executor.close();
    await parser.close();
  }
}

async function openEngines(clickhouse: Config['clickhouse'], limits: QueryLimits): Promise<{ parser: ReadOnlyEngine; executor: ReadOnlyEngine }> {
  const settings = analystQuerySettings(limits);
  if (clickhouse.url) {
    if (!clickhouse.queryUser) {
      throw new PipelineError('INPUT_INVALID', 'expctl query on a ClickHouse server connects as a read-only user: set CLICKHOUSE_QUERY_USER and CLICKHOUSE_QUERY_PASSWORD (infra/clickhouse/readonly-user.sql creates it)');
    }
    const parser = await openEmbeddedReadOnly(undefined, PARSER_SETTINGS);
    const login = { url: clickhouse.url, username: clickhouse.queryUser, password: clickhouse.queryPassword, database: clickhouse.database };
    return { parser, executor: openServerReadOnly(login, settings, (limits.timeoutSeconds + 10) * 1000) };
  }
  const where = `chDB at ${clickhouse.dataDir}`;
  if (!existsSync(clickhouse.dataDir)) {
    throw new PipelineError('INPUT_INVALID', `no ClickHouse store at ${clickhouse.dataDir}: run the pipeline (or expctl stack up) first, or set CLICKHOUSE_URL`);
  }
  const cannotOpen = (err: unknown) =>
    new PipelineError('INPUT_INVALID', `cannot open ClickHouse (${where}): ${errorMessage(err)}; if a sink is running on this store, query through a ClickHouse server instead`, { cause: err });
  let parser: ReadOnlyEngine | undefined;
  try {
    parser = await openEmbeddedReadOnly(clickhouse.dataDir, PARSER_SETTINGS);
    const executor = await openEmbeddedReadOnly(clickhouse.dataDir, settings, clickhouse.database);
    return { parser, executor };
  } catch (err) {
    await parser?.close();
    throw cannotOpen(err);
  }
}

/** Refuses to run anything on a connection that is not `readonly = 1` (a misconfigured server user, say). */
export async function assertReadOnly(executor: ReadOnlyEngine, clickhouse: Config['clickhouse']): Promise<void> {
  const [row] = await executor.rows("SELECT getSetting('readonly') AS readonly").catch((err: unknown) => {
    const where = executor.kind === 'server' ? `${clickhouse.url} as ${clickhouse.queryUser}` : `chDB at ${clickhouse.dataDir}`;
    // A server that answers but refuses: most likely a user without readonly-user.sql's profile, which refuses the limits sent.
    const hint = err instanceof ClickHouseError ? '; is the user the one infra/clickhouse/readonly-user.sql creates (its profile admits the limits expctl query sets)?' : '';
    throw new PipelineError('INPUT_INVALID', `cannot query ClickHouse (${where}): ${engineReason(err)}${hint}`, { cause: err });
  });
  const readonly = Number(row?.readonly);
  if (readonly !== 1) {
    const who = executor.kind === 'server' ? `user ${clickhouse.queryUser} on ${clickhouse.url}` : 'the embedded engine';
    throw new PipelineError('INPUT_INVALID', `${who} is not read-only (readonly = ${row?.readonly}); expctl query needs readonly = 1 (infra/clickhouse/readonly-user.sql)`);
  }
}
