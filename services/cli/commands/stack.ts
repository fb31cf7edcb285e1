import type { Command } from 'commander';
import type { Config } from '../../common/config.ts';
import type { StackState } from '../../common/stackState.ts';
import { createProgress } from '../progress.ts';
import { stackDown, stackStatus, stackUp } from '../stack/localStack.ts';

/** `expctl stack up | down | status`: the embedded stack for development, demos and tests. */
export function registerStackCommands(program: Command, loadConfig: () => Config): void {
  const stack = program.command('stack').description('start, stop and inspect the local stack (Kafka, schema registry, ClickHouse via chDB)');

  stack
    .command('up')
    .description('start the local stack (or restart its dead parts) on the ports it keeps, fetching Apache Kafka first if it is missing, and print its endpoints')
    .option('--json', 'print the endpoints as JSON')
    .action(async (options: { json?: boolean }) => {
      const config = loadConfig();
      const { state, alreadyRunning, started } = await stackUp(config, createProgress());
      if (alreadyRunning) process.stderr.write('the local stack is already running\n');
      else if (started.length === 1) process.stderr.write(`restarted ${started[0]} on its port; the rest was running\n`);
      process.stdout.write(options.json ? JSON.stringify(endpointsOf(state), null, 2) + '\n' : describeEndpoints(state));
    });

  stack
    .command('down')
    .description('stop the local stack (SIGTERM, then SIGKILL after a timeout); data and ports are kept unless --purge')
    .option('--purge', 'also delete the stack directory: Kafka data, registry topic, chDB data, the remembered ports')
    .action(async (options: { purge?: boolean }) => {
      await stackDown(loadConfig(), createProgress(), { purge: options.purge ?? false });
    });

  stack
    .command('status')
    .description('report each component of the local stack; exit status 1 when something is down')
    .option('--json', 'print the status as JSON')
    .action(async (options: { json?: boolean }) => {
      const components = await stackStatus(loadConfig());
      if (options.json) {
        process.stdout.write(JSON.stringify(components, null, 2) + '\n');
      } else {
        for (const c of components) process.stdout.write(`${c.running ? 'up  ' : 'down'}  ${c.name.padEnd(16)} ${c.endpoint.padEnd(28)} ${c.detail}\n`);
      }
      if (components.some((c) => !c.running)) process.exitCode = 1;
    });
}

function endpointsOf(state: StackState) {
  return {
    KAFKA_BROKERS: state.kafka.brokers.join(','),
    SCHEMA_REGISTRY_URL: state.registry.url,
    CHDB_PATH: state.clickhouse.dataDir,
    kafkaVersion: state.kafka.version,
  };
}

function describeEndpoints(state: StackState): string {
  const e = endpointsOf(state);
  return [
    `Kafka ${e.kafkaVersion}      ${e.KAFKA_BROKERS}`,
    `Schema registry   ${e.SCHEMA_REGISTRY_URL}`,
    `ClickHouse        chDB in-process, data in ${e.CHDB_PATH} (database ${state.clickhouse.database})`,
    '',
    'Other expctl commands find these automatically; for other tools:',
    `  export KAFKA_BROKERS=${e.KAFKA_BROKERS} SCHEMA_REGISTRY_URL=${e.SCHEMA_REGISTRY_URL}`,
    '',
  ].join('\n');
}
