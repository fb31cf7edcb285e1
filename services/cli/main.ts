import { Command, CommanderError, Option } from 'commander';
import { loadConfig, type Config } from '../common/config.ts';
import { errorMessage, isPipelineError } from '../common/errors.ts';
import { LOG_LEVELS } from '../common/logger.ts';
import { registerControlCommands } from './commands/control.ts';
import { registerDemoCommand } from './commands/demo.ts';
import { registerExperimentCommands } from './commands/experiments.ts';
import { registerKeyCommands } from './commands/keys.ts';
import { registerProduceCommand } from './commands/produce.ts';
import { registerQueryCommand } from './commands/query.ts';
import { registerReanalyzeCommand } from './commands/reanalyze.ts';
import { registerResultsCommands } from './commands/results.ts';
import { registerSimulateCommand } from './commands/simulate.ts';
import { registerStackCommands } from './commands/stack.ts';

/**
 * `expctl`, the one command line for producers, operators and analysts. Configuration is
 * loaded lazily by each command (so `--help` works with a broken environment) and
 * validated once; errors print one clear line and set a non-zero exit status.
 */
export function buildProgram(): Command {
  const program = new Command('expctl')
    .description('streaming analytics pipeline for experiments: Kafka in, per-variant statistics, auto-halt, ClickHouse out')
    .option('-c, --config <file>', 'JSON config file (default: $EXP_CONFIG)')
    .addOption(new Option('--log-level <level>', 'log level (default: $LOG_LEVEL or info)').choices(LOG_LEVELS))
    .showHelpAfterError()
    .exitOverride();

  const configFromFlags = (): Config => {
    const flags = program.opts<{ config?: string; logLevel?: string }>();
    const env = flags.logLevel ? { ...process.env, LOG_LEVEL: flags.logLevel } : process.env;
    return loadConfig({ env, ...(flags.config ? { file: flags.config } : {}) });
  };
  registerStackCommands(program, configFromFlags);
  registerProduceCommand(program, configFromFlags);
  registerExperimentCommands(program, configFromFlags);
  registerKeyCommands(program);
  registerReanalyzeCommand(program, configFromFlags);
  registerSimulateCommand(program);
  registerQueryCommand(program, configFromFlags);
  registerControlCommands(program, configFromFlags);
  registerResultsCommands(program, configFromFlags);
  registerDemoCommand(program, configFromFlags);
  return program;
}

export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode;
    process.stderr.write(`expctl: ${errorMessage(err)}\n`);
    if (!isPipelineError(err) && err instanceof Error && err.stack) process.stderr.write(`${err.stack}\n`);
    return isPipelineError(err, 'CONFIG_INVALID') || isPipelineError(err, 'INPUT_INVALID') || isPipelineError(err, 'QUERY_REFUSED') ? 2 : 1;
  }
}
