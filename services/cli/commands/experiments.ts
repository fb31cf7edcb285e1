import type { Command } from 'commander';
import type { Config } from '../../common/config.ts';
import { PipelineError } from '../../common/errors.ts';
import { readDefinitionFile } from '../../common/experimentDefinition.ts';
import { createServiceContext } from '../../common/serviceProcess.ts';
import { usersPerVariantForMeans, usersPerVariantForProportions } from '../../stats/sampleSize.ts';
import { applyDefinitions, loadSigner, moveExperiment, type CommandOutcome } from '../experiments/controlCommands.ts';

/**
 * `expctl experiments apply <files...>`, `start | conclude | archive <id> --reason ...` and
 * `plan`. Changes are commands signed with the caller's own key (--key-file or
 * $EXPCTL_KEY_FILE, as --principal or $EXPCTL_PRINCIPAL, a keyring principal with the
 * experimenter role) and decided by the control service; each prints the decision, and the
 * exit status is 0 only if every command was accepted.
 */
interface SignerOptions {
  keyFile?: string;
  principal?: string;
  wait: number;
}

/** At most this many definition files in one `experiments apply` (each at most DEFINITION_LIMITS.fileBytes). */
export const MAX_FILES_PER_APPLY = 1_000;

export function registerExperimentCommands(program: Command, loadConfig: () => Config): void {
  const experiments = program.command('experiments').description('define experiments, move them through their lifecycle, plan their sample sizes');
  const signed = (command: Command) =>
    command
      .option('--key-file <file>', 'your Ed25519 private key (default: $EXPCTL_KEY_FILE)')
      .option('--principal <name>', 'your principal in the keyring (default: $EXPCTL_PRINCIPAL)')
      .option('--wait <seconds>', "how long to wait for the control service's decision", number('--wait'), 30);
  const signerOf = (o: SignerOptions) => loadSigner(o.keyFile ?? process.env.EXPCTL_KEY_FILE, o.principal ?? process.env.EXPCTL_PRINCIPAL);
  const report = (outcomes: CommandOutcome[]) => {
    for (const o of outcomes) {
      const detail = o.decision === 'ACCEPTED' && o.version !== undefined ? (o.changed ? `version ${o.version}` : `unchanged, version ${o.version}`) : o.reason;
      process.stdout.write(`${o.experimentId}: ${o.decision}${o.decision === 'PENDING' ? '' : ` (audit record ${o.auditSequence})`}: ${detail}\n`);
    }
    if (outcomes.some((o) => o.decision !== 'ACCEPTED')) process.exitCode = 1;
  };

  signed(
    experiments
      .command('apply')
      .description('validate definition files (YAML or JSON) and send each as a signed DEFINE to the control service, which versions, audits and publishes the changed ones (a new experiment starts as a draft)')
      .argument('<files...>', 'definition files')
      .option('-r, --reason <text>', 'why, for the audit log', 'applied with expctl experiments apply'),
  ).action(async (files: string[], options: SignerOptions & { reason: string }) => {
    if (files.length > MAX_FILES_PER_APPLY) throw new PipelineError('INPUT_INVALID', `at most ${MAX_FILES_PER_APPLY} files in one apply (got ${files.length}); apply them in smaller groups`);
    // Every file is validated before anything is sent: all or nothing.
    const definitions = files.map(readDefinitionFile);
    const seen = new Set<string>();
    for (const { id } of definitions) {
      if (seen.has(id)) throw new PipelineError('INPUT_INVALID', `experiment '${id}' is defined in more than one of the files`);
      seen.add(id);
    }
    const signer = signerOf(options);
    const context = createServiceContext('expctl', loadConfig());
    report(await applyDefinitions(context, signer, definitions, options.reason, options.wait * 1000));
  });

  const moves = [
    ['start', 'START', 'start a draft: it begins enrolling users'],
    ['conclude', 'CONCLUDE', 'conclude a running or halted experiment with a decision: it enrolls no one after this, and its conclusion is stored in ClickHouse'],
    ['archive', 'ARCHIVE', 'archive a concluded experiment (or abandon a draft): nothing about it changes any more'],
  ] as const;
  for (const [name, action, description] of moves) {
    const command = signed(
      experiments
        .command(name)
        .description(description)
        .argument('<experiment>', 'experiment id')
        .requiredOption('-r, --reason <text>', 'why, for the audit log'),
    );
    if (action === 'CONCLUDE') command.requiredOption('--decision <decision>', 'ship:<variant>, no-ship or inconclusive');
    command.action(async (experimentId: string, options: SignerOptions & { reason: string; decision?: string }) => {
      const signer = signerOf(options);
      const context = createServiceContext('expctl', loadConfig());
      report([await moveExperiment(context, signer, experimentId, action, options.reason, options.decision, options.wait * 1000)]);
    });
  }

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
