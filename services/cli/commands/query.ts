import type { Command } from 'commander';
import type { Config } from '../../common/config.ts';
import { PipelineError } from '../../common/errors.ts';
import { DEFAULT_QUERY_LIMITS, limitProblem, type QueryLimits } from '../query/analystSettings.ts';
import { runAnalystQuery } from '../query/runAnalystQuery.ts';
import { formatTable } from '../reanalyze/formatTable.ts';

/**
 * `expctl query "<sql>"`: one read-only statement (SELECT, EXPLAIN, DESCRIBE, SHOW) over the
 * pipeline's database, checked on the engine's parse and run under row, time and memory
 * limits the statement cannot change (services/cli/query/), printed as a table or JSON.
 * A refused statement exits 2 with `refused: <reason>`.
 */
export function registerQueryCommand(program: Command, loadConfig: () => Config): void {
  program
    .command('query')
    .description("run one read-only statement over the pipeline's database (embedded chDB store, or CLICKHOUSE_URL as CLICKHOUSE_QUERY_USER)")
    .argument('<sql>', 'one SELECT (WITH, UNION, subqueries), EXPLAIN, DESCRIBE, SHOW TABLES or SHOW CREATE statement')
    .option('--json', 'print rows as JSON')
    .option('--max-rows <n>', 'fail results with more rows than this', limit('maxRows', '--max-rows'), DEFAULT_QUERY_LIMITS.maxRows)
    .option('--timeout <seconds>', 'stop the query after this many seconds', limit('timeoutSeconds', '--timeout'), DEFAULT_QUERY_LIMITS.timeoutSeconds)
    .option('--max-memory <MiB>', 'stop the query when it needs more memory than this', limit('maxMemoryMiB', '--max-memory'), DEFAULT_QUERY_LIMITS.maxMemoryMiB)
    .action(async (sql: string, options: { json?: boolean; maxRows: number; timeout: number; maxMemory: number }) => {
      const limits: QueryLimits = { maxRows: options.maxRows, timeoutSeconds: options.timeout, maxMemoryMiB: options.maxMemory };
      const { rows } = await runAnalystQuery(sql, loadConfig().clickhouse, limits);
      if (options.json) process.stdout.write(JSON.stringify(rows, null, 2) + '\n');
      else if (rows.length === 0) process.stdout.write('(no rows)\n');
      else {
        const headers = Object.keys(rows[0]!);
        process.stdout.write(formatTable(headers, rows.map((r) => headers.map((h) => (typeof r[h] === 'object' ? JSON.stringify(r[h]) : String(r[h]))))));
        process.stderr.write(`${rows.length} row(s)\n`);
      }
    });
}

function limit(name: keyof QueryLimits, flag: string): (v: string) => number {
  return (v) => {
    const n = Number(v);
    const problem = limitProblem(name, n);
    if (problem) throw new PipelineError('INPUT_INVALID', `${flag} ${problem}, got '${v}'`);
    return n;
  };
}
