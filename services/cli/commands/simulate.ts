import type { Command } from 'commander';
import { readDefinitionFile } from '../../common/experimentDefinition.ts';
import { createProgress } from '../progress.ts';
import { SIMULATE_LIMITS, parseSimulateFlags, type SimulateFlags } from '../simulate/simulateFlags.ts';
import { simulateRuns } from '../simulate/simulateRuns.ts';
import { formatSummary, summarize } from '../simulate/simulationSummary.ts';

/**
 * `expctl simulate <definition>`: before launch, how often the guard would halt this design
 * and how soon, on simulated users (services/cli/simulate/). In-process, no Kafka: the
 * guard's own merge and decision code on simulated aggregate deltas. Progress on stderr,
 * the report on stdout; with --json the last line of stdout is one JSON object.
 */
export function registerSimulateCommand(program: Command): void {
  const L = SIMULATE_LIMITS;
  const repeat = (value: string, previous: string[] = []) => [...previous, value];
  program
    .command('simulate')
    .description("run the guard's real decisions on simulated users of a definition (A/A unless --weights or --effect say otherwise): how often and how soon it halts")
    .argument('<definition>', 'experiment definition file (YAML or JSON), as for experiments apply')
    .option('--runs <n>', `simulated experiments (${L.runs.min} to ${L.runs.max.toLocaleString('en-US')}, default ${L.runs.default})`)
    .option('--users <n>', `users per run, all variants together (${L.users.min} to ${L.users.max.toLocaleString('en-US')}, default ${L.users.default.toLocaleString('en-US')})`)
    .option('--look-every <n>', `the guard decides every this many users (default ${L.lookEvery.default}; at most ${L.looks.toLocaleString('en-US')} looks per run)`)
    .option('--seed <n>', `random seed: the same seed gives the same figures (default ${L.seed.default})`)
    .option('--weights <w,...>', "the actual split, one weight per variant in the definition's order, e.g. 0.97,0.03 (default: the planned weights)")
    .option('--effect <metric=change>', 'move the treatments\' mean of a metric: +5 absolute, 10% relative, 0.1sd in standard deviations (repeatable)', repeat)
    .option('--baseline <metric=k=v,...>', 'a metric\'s baseline: rate=0.2 (conversion); mean=10,sd=3[,dist=normal|lognormal] (sum; default lognormal mean 10 sd 10) (repeatable)', repeat)
    .option('--users-per-minute <n>', `arrival rate, for the per-minute exposure counts (default ${L.usersPerMinute.default.toLocaleString('en-US')})`)
    .option('--json', 'end stdout with one JSON line: runs, halted, haltRate, haltRateInterval95, usersAtHalt, byCheck, haltsByIncident')
    .action(async (file: string, options: SimulateFlags & { json?: boolean }) => {
      const plan = parseSimulateFlags(readDefinitionFile(file), options);
      const progress = createProgress();
      const every = Math.max(1, Math.round(plan.runs / 10));
      const outcomes = await progress.step(`Simulating ${plan.runs} runs of ${plan.users.toLocaleString('en-US')} users`, async (note) =>
        simulateRuns(plan, (done, total) => {
          if (done % every === 0 || done === total) note(`runs ${done} / ${total}`);
        }),
      );
      const summary = summarize(outcomes);
      for (const line of formatSummary(plan, summary)) process.stdout.write(`${line}\n`);
      if (options.json) process.stdout.write(`${JSON.stringify(summary)}\n`);
    });
}
