import { join } from 'node:path';
import type { Command } from 'commander';
import type { Config } from '../../common/config.ts';
import { PipelineError } from '../../common/errors.ts';
import { createLogger } from '../../common/logger.ts';
import { prepareDemoDir } from '../demo/demoPipeline.ts';
import { runDemo } from '../demo/runDemo.ts';
import { createProgress } from '../progress.ts';

/** `expctl demo`: the pipeline catching and halting two broken experiments, in one command. */
export function registerDemoCommand(program: Command, loadConfig: () => Config): void {
  program
    .command('demo')
    .description('start everything in this process, run three experiments (one healthy, one with a sample ratio mismatch, one with a guardrail regression) on simulated users, and show what the pipeline did; exit 0 only if exactly the two broken ones were halted')
    .option('--users <n>', 'simulated users in all (split over the three experiments)', integer('--users', 300, 10_000_000), 15_000)
    .option('--rate <n>', 'new users per second', integer('--rate', 1, 100_000), 150)
    .option('--seed <n>', 'random seed (same seed, same users)', integer('--seed', 0, 2 ** 31), 7)
    .option('--dir <dir>', 'where the run keeps its data (wiped at start; the chDB store stays for querying)', '.demo')
    .action(async (options: { users: number; rate: number; seed: number; dir: string }) => {
      const config = loadConfig();
      prepareDemoDir(options.dir);
      const outcome = await runDemo({
        ...options,
        cacheDir: config.stack.cacheDir,
        logger: createLogger({ level: config.log.level === 'info' ? 'warn' : config.log.level, name: 'demo', file: join(options.dir, 'logs', 'demo.log') }),
        progress: createProgress(),
        print: (line) => process.stdout.write(`${line}\n`),
      });
      if (!outcome.ok) process.exitCode = 1;
    });
}

function integer(flag: string, min: number, max: number): (v: string) => number {
  return (v) => {
    const n = Number(v);
    if (!Number.isSafeInteger(n) || n < min || n > max) throw new PipelineError('INPUT_INVALID', `${flag} must be an integer from ${min} to ${max}, got '${v}'`);
    return n;
  };
}
