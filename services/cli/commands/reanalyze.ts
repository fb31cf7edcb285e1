import type { Command } from 'commander';
import { openClickHouse } from '../../common/clickhouse.ts';
import type { Config } from '../../common/config.ts';
import { PipelineError } from '../../common/errors.ts';
import { compareStatistics } from '../reanalyze/compareStatistics.ts';
import { formatTable } from '../reanalyze/formatTable.ts';
import { lateEventCount, recomputeFromRawTables, streamedStatistics } from '../reanalyze/reanalysisQueries.ts';
import { storedDefinition } from '../reanalyze/storedDefinition.ts';

/**
 * `expctl reanalyze <experiment>`: recompute the experiment's statistics in ClickHouse from
 * the raw tables, with the definition ClickHouse holds (the latest version, or the one asked
 * for), compare with the streamed aggregates, print both and their difference; exit status 1
 * on any difference beyond the tolerance. Everything comes from ClickHouse. The recomputation
 * is the event-time truth over every raw event; the events the aggregator marked late are
 * counted beside it, and `--without-late` leaves them out to show that they are the difference.
 */
export function registerReanalyzeCommand(program: Command, loadConfig: () => Config): void {
  program
    .command('reanalyze')
    .description('recompute an experiment from the raw events in ClickHouse and compare with the streamed statistics')
    .argument('<experiment>', 'experiment id')
    .option('--json', 'print the comparison as JSON')
    .option('--without-late', 'leave out the events the aggregator marked late (behind its watermark, not taken): what the stream could take in time, not the truth')
    .option('--definition-version <n>', 'recompute with this version of the definition (default: the latest)', (v) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 1) throw new PipelineError('INPUT_INVALID', `--definition-version must be a version number (1, 2, ...), got '${v}'`);
      return n;
    })
    .option('--tolerance <relative>', 'largest relative difference accepted', (v) => {
      const n = Number(v);
      if (!(n >= 0 && n < 1)) throw new PipelineError('INPUT_INVALID', `--tolerance must be a number in [0, 1), got '${v}'`);
      return n;
    }, 1e-9)
    .action(async (experimentId: string, options: { json?: boolean; withoutLate?: boolean; tolerance: number; definitionVersion?: number }) => {
      const config = loadConfig();
      const ch = await openClickHouse(config.clickhouse);
      try {
        const published = await storedDefinition(ch.client, experimentId, options.definitionVersion);
        const [streamed, recomputed] = [await streamedStatistics(ch.client, published.definition), await recomputeFromRawTables(ch.client, published.definition, published.concludedAt, { withoutLate: options.withoutLate === true })];
        const lateEvents = await lateEventCount(ch.client, published.definition);
        const rows = compareStatistics(published.definition, streamed, recomputed, options.tolerance);
        const mismatches = rows.filter((r) => r.mismatch).length;
        if (options.json) process.stdout.write(JSON.stringify({ experimentId, definitionVersion: published.version, tolerance: options.tolerance, withoutLate: options.withoutLate === true, lateEvents, mismatches, rows }, null, 2) + '\n');
        else {
          process.stdout.write(formatTable(['quantity', 'streamed', 'reanalysis', 'rel. difference', ''], rows.map((r) => [r.quantity, r.streamed, r.recomputed, r.relativeDifference.toExponential(2), r.mismatch ? 'MISMATCH' : 'ok'])));
          process.stdout.write(`${experimentId}: ${rows.length - mismatches} of ${rows.length} quantities agree within ${options.tolerance} relative\n`);
          // Late events are part of the truth but not of the stream: say how many, since they explain a difference.
          if (lateEvents > 0) process.stdout.write(`${experimentId}: ${lateEvents} of its events reached the aggregator behind its watermark and were not taken (late_event_rows)${options.withoutLate ? '; left out here' : '; --without-late leaves them out'}\n`);
        }
        if (mismatches > 0) process.exitCode = 1;
      } finally {
        await ch.close();
      }
    });
}
