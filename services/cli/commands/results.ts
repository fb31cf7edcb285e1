import type { Command } from 'commander';
import type { Config } from '../../common/config.ts';
import { PipelineError } from '../../common/errors.ts';
import { adminApiTarget, getFromAdminApi, type ApiAccess } from '../api/adminApiClient.ts';
import { formatTable } from '../reanalyze/formatTable.ts';

/**
 * `expctl status` (every experiment's state, users and last anomaly, and each service's lag)
 * and `expctl results <id>` (the numbers the results page shows: users against the planned
 * split, each metric's counts, mean and intervals), read from the admin API with the caller's
 * token, as a table or with --json as the API gives them.
 */
interface StatusBody {
  experiments: { experimentId: string; status: string | null; since: number | null; users: number; lastAnomaly: { type: string; severity: string; detectedAt: number; halted: boolean; variantId: string | null; metric: string | null } | null }[];
  services: { service: string; group: string; lag: number | null }[] | null;
}

interface ResultsBody {
  experimentId: string;
  status: string | null;
  statusDetail: { since: number; by: string; reason: string } | null;
  users: number;
  variants: {
    variantId: string; plannedWeight: number; users: number; share: number; conflicts: number;
    metrics: { metric: string; role: string; type: string; counts: { users: number; sum: number; conversions: number; events: number }; mean: number | null; interval95: [number, number] | null; versusControl: { difference: number; welch95: [number, number] | null; alwaysValid: { lower: number; upper: number } | null } | null }[];
  }[];
}

const ID = /^[A-Za-z0-9._-]{1,200}$/;

/** How expctl and the results page print a number (services/control/ui/app.js `fmt`). */
export function fmt(x: number | null | undefined): string {
  if (x === null || x === undefined) return '–';
  return Number.isInteger(x) ? String(x) : x.toPrecision(6);
}
const interval = (i: [number, number] | null | undefined) => (i ? `[${fmt(i[0])}, ${fmt(i[1])}]` : '–');
const when = (ms: number | null) => (ms ? new Date(ms).toISOString().replace(/\.\d+Z$/, 'Z') : '–');

export function registerResultsCommands(program: Command, loadConfig: () => Config): void {
  const withApi = (command: Command) =>
    command
      .option('--api <url>', 'admin API base URL (default: $EXPCTL_API_URL or http://<control.apiHost>:<control.apiPort>)')
      .option('--token-file <file>', 'file holding your API token (default: $EXPCTL_TOKEN)')
      .option('--json', 'print the API\'s JSON');

  withApi(program.command('status').description("every experiment's state, users and last anomaly, and how far behind each service is (through the admin API)")).action(async (options: ApiAccess & { json?: boolean }) => {
    const body = await getFromAdminApi<StatusBody>(adminApiTarget(options, loadConfig()), '/status');
    if (options.json) return void process.stdout.write(`${JSON.stringify(body)}\n`);
    process.stdout.write(formatTable(['experiment', 'state', 'since', 'users', 'last anomaly'], body.experiments.map((e) => [
      e.experimentId, e.status ?? '–', when(e.since), e.users,
      e.lastAnomaly ? `${e.lastAnomaly.type} ${e.lastAnomaly.severity}${e.lastAnomaly.halted ? ' (halted)' : ''} at ${when(e.lastAnomaly.detectedAt)}` : '–',
    ])));
    process.stdout.write('\n');
    if (!body.services) process.stdout.write('service lags: unavailable (the admin API could not ask the broker)\n');
    else process.stdout.write(formatTable(['service', 'consumer group', 'lag'], body.services.map((s) => [s.service, s.group, s.lag === null ? 'no offsets committed' : s.lag])));
  });

  withApi(program.command('results').description("an experiment's live results, as the results page shows them (through the admin API)").argument('<experiment>', 'experiment id')).action(async (experiment: string, options: ApiAccess & { json?: boolean }) => {
    if (!ID.test(experiment)) throw new PipelineError('INPUT_INVALID', `'${experiment.slice(0, 50)}' is not an experiment id (letters, digits, dot, dash, underscore; at most 200)`);
    const r = await getFromAdminApi<ResultsBody>(adminApiTarget(options, loadConfig()), `/experiments/${encodeURIComponent(experiment)}/results`);
    if (options.json) return void process.stdout.write(`${JSON.stringify(r)}\n`);
    const s = r.statusDetail;
    process.stdout.write(`${r.experimentId}: ${r.status ?? 'no status'}${s ? ` since ${when(s.since)} by ${s.by} (${s.reason})` : ''}; ${r.users} users\n\n`);
    process.stdout.write(formatTable(['variant', 'planned', 'users', 'share', 'in two variants'], r.variants.map((v) => [v.variantId, fmt(v.plannedWeight), v.users, fmt(v.share), v.conflicts])));
    process.stdout.write('\n');
    process.stdout.write(formatTable(['metric', 'variant', 'users', 'conversions', 'events', 'sum', 'mean', '95% interval', 'diff vs control', 'welch 95%', 'always-valid'], r.variants.flatMap((v) => v.metrics.map((m) => [
      `${m.metric} (${m.role})`, v.variantId, m.counts.users, m.counts.conversions, m.counts.events, fmt(m.counts.sum), fmt(m.mean), interval(m.interval95),
      fmt(m.versusControl?.difference), interval(m.versusControl?.welch95), m.versusControl?.alwaysValid ? interval([m.versusControl.alwaysValid.lower, m.versusControl.alwaysValid.upper]) : '–',
    ]))));
  });
}
