import { existsSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { PipelineError } from '../../common/errors.ts';
import { generateSigningKeyPair } from '../../common/signing.ts';

/** `expctl keys generate <principal>`: an Ed25519 key pair for signing control commands. */
export function registerKeyCommands(program: Command): void {
  program
    .command('keys')
    .description('manage signing keys')
    .command('generate')
    .description('write <principal>.key (private, PKCS#8 PEM, mode 600) and <principal>.pub (public, SPKI PEM)')
    .argument('<principal>', 'the principal the key belongs to, e.g. guardian or alice')
    .option('-d, --dir <dir>', 'directory for the files', '.')
    .option('--force', 'overwrite existing files')
    .action((principal: string, options: { dir: string; force?: boolean }) => {
      if (!/^[A-Za-z0-9._@-]{1,100}$/.test(principal)) throw new PipelineError('INPUT_INVALID', `principal '${principal}': use letters, digits, dot, dash, underscore, @`);
      const privatePath = resolve(options.dir, `${principal}.key`);
      const publicPath = resolve(options.dir, `${principal}.pub`);
      for (const path of [privatePath, publicPath]) if (existsSync(path) && !options.force) throw new PipelineError('INPUT_INVALID', `${path} exists; use --force to replace it`);
      const keys = generateSigningKeyPair();
      writeFileSync(privatePath, keys.privateKey, { mode: 0o600 });
      writeFileSync(publicPath, keys.publicKey);
      process.stdout.write(`${privatePath}\n${publicPath}\n`);
    });
}
