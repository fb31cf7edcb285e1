import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { openClickHouse } from '../../common/clickhouse.ts';
import type { Config } from '../../common/config.ts';
import { PipelineError, errorMessage } from '../../common/errors.ts';
import { createServiceContext } from '../../common/serviceProcess.ts';
import { verifyChain } from '../../common/auditChain.ts';
import { auditFromClickHouse, auditFromKafka } from '../audit/readAuditLog.ts';

/**
 * `expctl halt|resume <experiment> --reason ...` through the admin API (the caller's token
 * from $EXPCTL_TOKEN or --token-file, never a flag: flags show in `ps`), and
 * `expctl audit verify`, which walks the hash chain and names the first broken link.
 */
export function registerControlCommands(program: Command, loadConfig: () => Config): void {
  for (const action of ['halt', 'resume'] as const) {
    program
      .command(action)
      .description(action === 'halt' ? 'halt an experiment (operator role) through the admin API' : 'resume a halted experiment (operator role) through the admin API')
      .argument('<experiment>', 'experiment id')
      .requiredOption('-r, --reason <text>', 'why, for the audit log (at least 3 characters)')
      .option('--api <url>', 'admin API base URL (default: $EXPCTL_API_URL or http://<control.apiHost>:<control.apiPort>)')
      .option('--token-file <file>', 'file holding your API token (default: $EXPCTL_TOKEN)')
      .action(async (experiment: string, options: { reason: string; api?: string; tokenFile?: string }) => {
        const token = options.tokenFile ? readToken(options.tokenFile) : process.env.EXPCTL_TOKEN;
        if (!token) throw new PipelineError('INPUT_INVALID', 'no API token: set EXPCTL_TOKEN or pass --token-file');
        const config = loadConfig();
        const base = options.api ?? process.env.EXPCTL_API_URL ?? `http://${config.control.apiHost}:${config.control.apiPort}`;
        if (!URL.canParse(base)) throw new PipelineError('INPUT_INVALID', `--api: '${base}' is not a URL`);
        let response: Response;
        try {
          response = await fetch(new URL(`/experiments/${encodeURIComponent(experiment)}/${action}`, base), {
            method: 'POST',
            headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
            body: JSON.stringify({ reason: options.reason }),
            signal: AbortSignal.timeout(30_000),
          });
        } catch (err) {
          throw new PipelineError('INPUT_INVALID', `cannot reach the admin API at ${base}: ${errorMessage(err)}; is the control service running?`);
        }
        const body = (await response.json().catch(() => ({}))) as Record<string, unknown>;
        if (response.status === 200) {
          process.stdout.write(`${experiment}: ${action === 'halt' ? 'halted' : 'resumed'} (${body.reason}; audit record ${body.auditSequence})\n`);
          return;
        }
        if (response.status === 202) {
          process.stdout.write(`${experiment}: command ${body.commandId} published; the control service has not decided yet (check \`expctl audit\` or GET /audit)\n`);
          process.exitCode = 1;
          return;
        }
        const message = `${experiment}: ${action} ${response.status === 409 ? 'rejected by the control service' : 'refused'} (${response.status} ${body.error ?? body.decision ?? ''}): ${body.message ?? body.reason ?? ''}`;
        if (response.status === 400 || response.status === 401 || response.status === 403 || response.status === 404) throw new PipelineError('INPUT_INVALID', message);
        throw new PipelineError('CONTROL_REFUSED', message);
      });
  }

  program
    .command('audit')
    .description('the control plane audit log')
    .command('verify')
    .description('walk the hash chain of the audit log and report the first broken link (exit 1 if broken)')
    .option('--source <where>', 'kafka (exp.audit) or clickhouse (audit_log)', 'kafka')
    .action(async (options: { source: string }) => {
      if (options.source !== 'kafka' && options.source !== 'clickhouse') throw new PipelineError('INPUT_INVALID', `--source must be kafka or clickhouse, got '${options.source}'`);
      const config = loadConfig();
      let records;
      if (options.source === 'kafka') {
        const context = createServiceContext('expctl', config);
        process.stderr.write(`reading ${context.topics.audit} ...\n`);
        records = await auditFromKafka(context.kafka, context.topics.audit, context.logger);
      } else {
        const ch = await openClickHouse(config.clickhouse).catch((err: unknown) => {
          throw new PipelineError('INPUT_INVALID', `cannot open ClickHouse (${config.clickhouse.url ?? `chDB at ${config.clickhouse.dataDir}`}): ${errorMessage(err)}`);
        });
        try {
          records = await auditFromClickHouse(ch);
        } finally {
          await ch.close();
        }
      }
      const check = verifyChain(records);
      if (check.ok) {
        const head = records[records.length - 1];
        process.stdout.write(`audit chain intact: ${check.records} record(s)${head ? `, head sequence ${head.sequence}, hash ${head.recordHash}` : ''}\n`);
        return;
      }
      process.stdout.write(`audit chain BROKEN at record ${check.position + 1} of ${records.length} (sequence ${check.sequence}): ${check.problem}\n`);
      process.exitCode = 1;
    });
}

function readToken(file: string): string {
  try {
    return readFileSync(file, 'utf8').trim();
  } catch (err) {
    throw new PipelineError('INPUT_INVALID', `--token-file: ${errorMessage(err)}`);
  }
}
