import type { Command } from 'commander';
import type { Config } from '../../common/config.ts';
import { PipelineError } from '../../common/errors.ts';
import { readDefinitionFile } from '../../common/experimentDefinition.ts';
import { createServiceContext } from '../../common/serviceProcess.ts';
import { usersPerVariantForMeans, usersPerVariantForProportions } from '../../stats/sampleSize.ts';
import { applyDefinitions } from '../experiments/applyDefinitions.ts';

/** At most this many definition files in one `experiments apply` (each at most DEFINITION_LIMITS.fileBytes). */
export const MAX_FILES_PER_APPLY = 1_000;

/** `expctl experiments apply <files...>` and `expctl experiments plan`. */
export function registerExperimentCommands(program: Command, loadConfig: () => Config): void {
  const experiments = program.command('experiments').description('define experiments and plan their sample sizes');

  experiments
    .command('apply')
    .description('validate definition files (YAML or JSON) and publish the changed ones, versioned, to exp.definitions')
    .argument('<files...>', 'definition files')
    .action(async (files: string[]) => {
      if (files.length > MAX_FILES_PER_APPLY) throw new PipelineError('INPUT_INVALID', `at most ${MAX_FILES_PER_APPLY} files in one apply (got ${files.length}); apply them in smaller groups`);
      // Every file is validated before anything is published: all or nothing.
      const definitions = files.map(readDefinitionFile);
      const seen = new Set<string>();
      for (const { id } of definitions) {
        if (seen.has(id)) throw new PipelineError('INPUT_INVALID', `experiment '${id}' is defined in more than one of the files`);
        seen.add(id);
      }
      const context = createServiceContext('expctl', loadConfig());
      const outcomes = await applyDefinitions(context, definitions);
      for (const o of outcomes) process.stdout.write(`${o.experimentId}: ${o.changed ? `applied as version ${o.version}` : `unchanged (version ${o.version})`}\n`);
    });

  experiments
    .command('plan')
    .description('users needed per variant to detect an effect (two-sided test, normal approximation)')
    .requiredOption('--mde <effect>', 'minimum detectable effect, absolute (e.g. 0.01 for one point of conversion)', number('--mde'))
    .option('--baseline <rate>', 'baseline conversion rate, for a conversion metric', number('--baseline'))
    .option('--sd <deviation>', "standard deviation of the metric per user, for a sum metric", number('--sd'))
    .option('--relative', 'read --mde as relative to the baseline (0.05 = 5 % lift)')
    .option('--alpha <alpha>', 'significance level', number('--alpha'), 0.05)
    .option('--power <power>', 'power', number('--power'), 0.8)
    .action((o: { mde: number; baseline?: number; sd?: number; relative?: boolean; alpha: number; power: number }) => {
      if ((o.baseline === undefined) === (o.sd === undefined)) throw new PipelineError('INPUT_INVALID', 'give either --baseline (conversion metric) or --sd (sum metric)');
      if (o.relative && o.baseline === undefined) throw new PipelineError('INPUT_INVALID', '--relative needs --baseline');
      const effect = o.relative ? o.mde * o.baseline! : o.mde;
      const result = o.baseline !== undefined
        ? usersPerVariantForProportions({ baseline: o.baseline, minimumDetectableEffect: effect, alpha: o.alpha, power: o.power })
        : usersPerVariantForMeans({ standardDeviation: o.sd!, minimumDetectableEffect: effect, alpha: o.alpha, power: o.power });
      if (!result.ok) throw new PipelineError('INPUT_INVALID', `cannot plan: ${result.detail}`);
      process.stdout.write(`${result.usersPerVariant} users per variant (alpha ${o.alpha}, power ${o.power}, effect ${effect})\n`);
    });
}

function number(flag: string): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (value.trim() === '' || !Number.isFinite(n)) throw new PipelineError('INPUT_INVALID', `${flag} must be a number, got '${value}'`);
    return n;
  };
}
