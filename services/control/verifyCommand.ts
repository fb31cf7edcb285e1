import { CONFIG_DEFAULTS, type Config } from '../common/config.ts';
import { DEFINITION_LIMITS } from '../common/experimentDefinition.ts';
import { signedFields } from '../common/commandSigning.ts';
import type { ControlCommand } from '../common/contracts/controlCommands.ts';
import { verifyPayload } from '../common/signing.ts';
import type { Keyring, Role } from './keyring.ts';

/**
 * Decides whether a control command may be applied: well-formed, signed by a known
 * principal whose key verifies the canonical encoding, holding a role allowed for the
 * action, fresh, and not seen before (nonce). Pure: the caller supplies the time and the
 * nonces seen within the freshness window.
 */
export const ACTION_ROLES: Readonly<Record<string, readonly Role[]>> = {
  HALT: ['guardian', 'operator'],
  RESUME: ['operator'],
  DEFINE: ['experimenter'],
  START: ['experimenter'],
  CONCLUDE: ['experimenter'],
  ARCHIVE: ['experimenter'],
};

export type Rejection = 'MALFORMED' | 'UNSIGNED' | 'UNKNOWN_PRINCIPAL' | 'BAD_SIGNATURE' | 'WRONG_ROLE' | 'STALE' | 'FROM_THE_FUTURE' | 'REPLAYED';

/**
 * Caps on a command's strings, checked before its signature: whatever reaches exp.control
 * (its writers are trusted by ACL, not by content) ends up quoted in the audit log.
 */
export const COMMAND_LIMITS: Readonly<Partial<Record<keyof ControlCommand, number>>> = {
  commandId: 100,
  experimentId: 128,
  action: 16,
  reason: 2_000,
  evidence: 256 * 1024,
  issuer: 100,
  nonce: 100,
  signature: 200,
  /**
   * DEFINE carries the definition as JSON (CONCLUDE a short decision). A definition within
   * DEFINITION_LIMITS is at most about 25,000 characters as JSON even with every string escaped
   * (test/unit/command-limits.test.ts); the cap is a definition file's own, 64 KiB.
   */
  payload: DEFINITION_LIMITS.fileBytes,
};

export type Verdict = { accepted: true; principal: string } | { accepted: false; rejection: Rejection; detail: string };

export interface Freshness {
  /** Oldest issuedAt accepted, relative to now. */
  maxAgeMs: number;
  /** Clock skew tolerated for commands dated in the future. */
  maxSkewMs: number;
}

/** The freshness config `control` sets. */
export function freshnessOf(control: Config['control']): Freshness {
  return { maxAgeMs: control.maxCommandAgeMs, maxSkewMs: control.maxClockSkewMs };
}

export const DEFAULT_FRESHNESS: Readonly<Freshness> = Object.freeze(freshnessOf(CONFIG_DEFAULTS.control));

export function verifyCommand(command: Partial<ControlCommand> | undefined, keyring: Keyring, seenNonces: { has(nonce: string): boolean }, now: number, freshness = DEFAULT_FRESHNESS): Verdict {
  const reject = (rejection: Rejection, detail: string): Verdict => ({ accepted: false, rejection, detail });
  if (!command) return reject('MALFORMED', 'not a ControlCommand');
  for (const field of ['commandId', 'experimentId', 'action', 'issuer', 'nonce'] as const) {
    if (typeof command[field] !== 'string' || command[field] === '') return reject('MALFORMED', `${field} is missing or empty`);
  }
  for (const [field, max] of Object.entries(COMMAND_LIMITS)) {
    const value = (command as Record<string, unknown>)[field];
    if (typeof value === 'string' && max !== undefined && value.length > max) return reject('MALFORMED', `${field}: at most ${max} characters (got ${value.length})`);
  }
  if (typeof command.issuedAt !== 'number' || !Number.isFinite(command.issuedAt)) return reject('MALFORMED', 'issuedAt is missing');
  if (!ACTION_ROLES[command.action!]) return reject('MALFORMED', `unknown action ${command.action}`);
  if (typeof command.signature !== 'string' || command.signature === '') return reject('UNSIGNED', 'no signature');
  const principal = keyring.principal(command.issuer!);
  if (!principal) return reject('UNKNOWN_PRINCIPAL', `no principal '${command.issuer}' in the keyring`);
  if (!verifyPayload({ ...signedFields(command), signature: command.signature }, principal.publicKey)) return reject('BAD_SIGNATURE', `the signature does not verify with ${principal.name}'s key`);
  const allowed = ACTION_ROLES[command.action!]!;
  if (!allowed.some((role) => principal.roles.has(role))) return reject('WRONG_ROLE', `${command.action} needs one of ${allowed.join(', ')}; ${principal.name} has ${[...principal.roles].join(', ')}`);
  if (command.issuedAt! < now - freshness.maxAgeMs) return reject('STALE', `issued ${Math.round((now - command.issuedAt!) / 1000)} s ago; at most ${freshness.maxAgeMs / 1000} s accepted`);
  if (command.issuedAt! > now + freshness.maxSkewMs) return reject('FROM_THE_FUTURE', `issued ${Math.round((command.issuedAt! - now) / 1000)} s in the future`);
  if (seenNonces.has(command.nonce!)) return reject('REPLAYED', `nonce ${command.nonce} was used before`);
  return { accepted: true, principal: principal.name };
}
