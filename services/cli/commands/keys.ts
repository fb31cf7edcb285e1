import { createHash, randomBytes } from 'node:crypto';
import { existsSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { PipelineError } from '../../common/errors.ts';
import { generateSigningKeyPair } from '../../common/signing.ts';
import { ROLES, type Role } from '../../common/keyring.ts';

/** `expctl keys generate <principal>`: an Ed25519 key pair for signing control commands. */
export function registerKeyCommands(program: Command): void {
  const keys = program.command('keys').description('manage signing keys and admin API tokens');
  keys
    .command('generate')
    .description('write <principal>.key (private, PKCS#8 PEM, mode 600) and <principal>.pub (public, SPKI PEM)')
    .argument('<principal>', 'the principal the key belongs to, e.g. guardian or alice')
    .option('-d, --dir <dir>', 'directory for the files', '.')
    .option('--force', 'overwrite existing files')
    .option('--roles <roles>', `also print the keyring entry for the principal with these roles (comma-separated: ${ROLES.join(', ')})`)
    .action((principal: string, options: { dir: string; force?: boolean; roles?: string }) => {
      const roles = options.roles === undefined ? undefined : parseRoles(options.roles);
      if (!/^[A-Za-z0-9._@-]{1,100}$/.test(principal)) throw new PipelineError('INPUT_INVALID', `principal '${principal}': use letters, digits, dot, dash, underscore, @`);
      const privatePath = resolve(options.dir, `${principal}.key`);
      const publicPath = resolve(options.dir, `${principal}.pub`);
      for (const path of [privatePath, publicPath]) if (existsSync(path) && !options.force) throw new PipelineError('INPUT_INVALID', `${path} exists; use --force to replace it`);
      const keys = generateSigningKeyPair();
      writeFileSync(privatePath, keys.privateKey, { mode: 0o600 });
      writeFileSync(publicPath, keys.publicKey);
      process.stdout.write(`${privatePath}\n${publicPath}\n`);
      if (roles) process.stdout.write(`keyring entry (add it to "principals"):\n${JSON.stringify({ name: principal, publicKey: keys.publicKey, roles }, null, 2)}\n`);
    });

  keys
    .command('token')
    .description('make a random admin API token for a principal: prints the token once (give it to its owner) and the hashed keyring entry')
    .argument('<principal>', 'the principal the token authenticates as')
    .action((principal: string) => {
      if (!/^[A-Za-z0-9._@-]{1,100}$/.test(principal)) throw new PipelineError('INPUT_INVALID', `principal '${principal}': use letters, digits, dot, dash, underscore, @`);
      const token = randomBytes(32).toString('base64url');
      process.stdout.write(`token (shown once): ${token}\nkeyring entry (add it to "apiTokens"):\n${JSON.stringify({ sha256: createHash('sha256').update(token, 'utf8').digest('hex'), principal })}\n`);
    });
}

function parseRoles(value: string): Role[] {
  const roles = value.split(',').map((r) => r.trim()).filter(Boolean);
  const unknown = roles.filter((r) => !(ROLES as readonly string[]).includes(r));
  if (roles.length === 0 || unknown.length > 0) throw new PipelineError('INPUT_INVALID', `--roles: ${unknown.length ? `unknown role(s) ${unknown.join(', ')}` : 'none given'}; choose from ${ROLES.join(', ')}`);
  return roles as Role[];
}
