import { createHash, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { PipelineError } from './errors.ts';
import { publicKeyFromPem } from './signing.ts';

/**
 * Who may do what: principals with their Ed25519 public keys and roles, and admin API tokens
 * (stored as SHA-256 hashes only) mapped to principals. Loaded from a JSON file, validated.
 * The control role is the control service's own: its key signs the definitions it publishes
 * on exp.definitions, and every service that reads them checks that signature here.
 */
export const ROLES = ['guardian', 'operator', 'experimenter', 'analyst', 'control'] as const;
export type Role = (typeof ROLES)[number];

const KeyringSchema = z.strictObject({
  principals: z
    .array(z.strictObject({ name: z.string().regex(/^[A-Za-z0-9._@-]{1,100}$/), publicKey: z.string().includes('BEGIN PUBLIC KEY', { message: 'a PEM public key' }), roles: z.array(z.enum(ROLES)).min(1) }))
    .min(1),
  apiTokens: z.array(z.strictObject({ sha256: z.string().regex(/^[0-9a-f]{64}$/, 'hex SHA-256 of the token'), principal: z.string() })).default([]),
});

export interface Principal {
  name: string;
  publicKey: KeyObject;
  roles: ReadonlySet<Role>;
}

export class Keyring {
  private constructor(
    private readonly principals: ReadonlyMap<string, Principal>,
    private readonly tokens: ReadonlyMap<string, string>,
  ) {}

  static parse(value: unknown, source: string): Keyring {
    const parsed = KeyringSchema.safeParse(value);
    if (!parsed.success) {
      throw new PipelineError('CONFIG_INVALID', `${source}: invalid keyring: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(top level)'}: ${i.message}`).join('; ')}`);
    }
    const principals = new Map<string, Principal>();
    for (const [i, p] of parsed.data.principals.entries()) {
      if (principals.has(p.name)) throw new PipelineError('CONFIG_INVALID', `${source}: principals.${i}.name: '${p.name}' appears twice`);
      let publicKey: KeyObject;
      try {
        publicKey = publicKeyFromPem(p.publicKey);
      } catch (err) {
        throw new PipelineError('CONFIG_INVALID', `${source}: principals.${i}.publicKey: ${(err as Error).message}`);
      }
      principals.set(p.name, { name: p.name, publicKey, roles: new Set(p.roles) });
    }
    const tokens = new Map<string, string>();
    for (const [i, t] of parsed.data.apiTokens.entries()) {
      if (!principals.has(t.principal)) throw new PipelineError('CONFIG_INVALID', `${source}: apiTokens.${i}.principal: no principal '${t.principal}'`);
      tokens.set(t.sha256, t.principal);
    }
    return new Keyring(principals, tokens);
  }

  static load(path: string): Keyring {
    let value: unknown;
    try {
      value = JSON.parse(readFileSync(path, 'utf8'));
    } catch (err) {
      throw new PipelineError('CONFIG_INVALID', `cannot read keyring ${path}: ${(err as Error).message}`);
    }
    return Keyring.parse(value, path);
  }

  principal(name: string): Principal | undefined {
    return this.principals.get(name);
  }

  /** Names of the principals holding a role. */
  holders(role: Role): string[] {
    return [...this.principals.values()].filter((p) => p.roles.has(role)).map((p) => p.name);
  }

  /** The principal an API token belongs to (tokens are compared by their SHA-256). */
  principalForToken(token: string): Principal | undefined {
    const name = this.tokens.get(createHash('sha256').update(token, 'utf8').digest('hex'));
    return name === undefined ? undefined : this.principals.get(name);
  }
}
