import type { Command } from 'commander';
import { openClickHouse } from '../../common/clickhouse.ts';
import type { Config } from '../../common/config.ts';
import { PipelineError, errorMessage } from '../../common/errors.ts';
import { formatTable } from '../reanalyze/formatTable.ts';

/**
 * `expctl query "<sql>"`: read-only SQL (ClickHouse `readonly = 2`: no writes, no DDL) against the embedded
 * store or CLICKHOUSE_URL, with a row limit and a time limit, printed as a table or JSON.
 */
export function registerQueryCommand(program: Command, loadConfig: () => Config): void {
  program
    .command('query')
    .description('run read-only SQL against ClickHouse (embedded chDB store or CLICKHOUSE_URL)')
    .argument('<sql>', 'a SELECT (or SHOW / DESCRIBE) statement')
    .option('--json', 'print rows as JSON')
    .option('--max-rows <n>', 'refuse results with more rows than this', positive('--max-rows'), 10_000)
    .option('--timeout <seconds>', 'stop the query after this many seconds', positive('--timeout'), 30)
    .action(async (sql: string, options: { json?: boolean; maxRows: number; timeout: number }) => {
      if (sql.trim() === '') throw new PipelineError('INPUT_INVALID', 'the query is empty');
      // readonly = 2 forbids writes and DDL but lets this command set its limits; a SETTINGS
      // clause in the query could lift them, so it is refused.
      if (/\bSETTINGS\b/i.test(sql)) throw new PipelineError('INPUT_INVALID', 'SETTINGS clauses are not allowed here; use --max-rows and --timeout');
      const config = loadConfig();
      const ch = await openClickHouse(config.clickhouse).catch((err: unknown) => {
        throw new PipelineError('INPUT_INVALID', `cannot open ClickHouse (${config.clickhouse.url ?? `chDB at ${config.clickhouse.dataDir}`}): ${errorMessage(err)}; if a sink is running on this store, query through a ClickHouse server instead`);
      });
      try {
        const result = await ch.client.query({
          query: sql,
          format: 'JSONEachRow',
          clickhouse_settings: { readonly: '2', max_result_rows: String(options.maxRows), result_overflow_mode: 'throw', max_execution_time: options.timeout },
        });
        const rows = await result.json<Record<string, unknown>>();
        if (options.json) process.stdout.write(JSON.stringify(rows, null, 2) + '\n');
        else if (rows.length === 0) process.stdout.write('(no rows)\n');
        else {
          const headers = Object.keys(rows[0]!);
          process.stdout.write(formatTable(headers, rows.map((r) => headers.map((h) => (typeof r[h] === 'object' ? JSON.stringify(r[h]) : String(r[h]))))));
          process.stderr.write(`${rows.length} row(s)\n`);
        }
      } catch (err) {
        throw new PipelineError('INPUT_INVALID', `query failed: ${errorMessage(err)}`, { cause: err });
      } finally {
        await ch.close();
      }
    });
}

function positive(flag: string): (v: string) => number {
  return (v) => {
    const n = Number(v);
    if (!Number.isSafeInteger(n) || n < 1) throw new PipelineError('INPUT_INVALID', `${flag} must be a positive integer, got '${v}'`);
    return n;
  };
}
