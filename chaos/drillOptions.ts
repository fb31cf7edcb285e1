import { z } from 'zod';

/**
 * What one drill run does: the command-line flags, validated once, plus the profile that
 * `--quick` selects (the CI-shortened form: the four fault kinds, one each, less traffic and
 * shorter pauses) or the full drill (more faults, every stateful service killed or paused once).
 */
export const SERVICE_NAMES = ['ingest', 'aggregate', 'guard', 'control', 'sink'] as const;
export type ServiceName = (typeof SERVICE_NAMES)[number];

export const FAULT_KINDS = ['broker-kill', 'registry-kill', 'service-pause', 'service-kill'] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

export interface FaultPlan {
  kind: FaultKind;
  /** The service a service-pause or service-kill hits. */
  service?: ServiceName;
}

export interface DrillOptions {
  json: boolean;
  quick: boolean;
  seed: number;
  /** Working directory of the run (stack, logs, keys, chDB); a fresh temporary one if absent. */
  dir: string | undefined;
  keep: boolean;
  /** Events per second the traffic generator aims at. */
  rate: number;
  faults: FaultPlan[];
  sessionTimeoutMs: number;
  /** HEALTH_STALL_MS given to every service; undefined: their default. */
  healthStallMs: number | undefined;
  /** Traffic before the first fault, so every service is busy when it is hit. */
  warmupMs: number;
  /** Quiet time between a recovery and the next fault. */
  settleMs: number;
  /** How long a fault may take to recover before it is reported as not recovered. */
  recoveryTimeoutMs: number;
  /** How long the pipeline may take to catch up once traffic stops. */
  catchUpTimeoutMs: number;
  /** How long the guard may take to halt the broken experiment. */
  haltTimeoutMs: number;
  /** The whole drill, clean-up included, ends within this (waits are cut, late faults skipped). */
  budgetMs: number;
}

export const QUICK_FAULTS = 'broker-kill,registry-kill,service-pause:aggregate,service-kill:ingest';
export const FULL_FAULTS = 'broker-kill,registry-kill,service-pause:aggregate,service-kill:sink,service-pause:ingest,service-kill:aggregate,service-kill:guard,service-kill:control';

/** The raw flags as commander hands them over (strings, or booleans for switches). */
export interface RawFlags {
  json?: boolean;
  quick?: boolean;
  seed?: string;
  dir?: string;
  keep?: boolean;
  rate?: string;
  faults?: string;
  sessionTimeoutMs?: string;
  healthStallMs?: string;
}

const integer = (name: string, min: number, max: number) =>
  z
    .string()
    .regex(/^\d+$/, `${name} must be a whole number`)
    .transform(Number)
    .pipe(z.number().int().min(min, `${name} must be at least ${min}`).max(max, `${name} must be at most ${max}`));

const FlagsSchema = z.strictObject({
  json: z.boolean().optional(),
  quick: z.boolean().optional(),
  seed: integer('--seed', 0, 2 ** 32 - 1).optional(),
  dir: z.string().min(1, '--dir must not be empty').optional(),
  keep: z.boolean().optional(),
  rate: integer('--rate', 20, 5_000).optional(),
  faults: z.string().optional(),
  sessionTimeoutMs: integer('--session-timeout-ms', 3_000, 30_000).optional(),
  healthStallMs: integer('--health-stall-ms', 1_000, 600_000).optional(),
});

/** Parses `kind[:service],...`; an error names the offending entry. */
export function parseFaults(text: string): FaultPlan[] {
  const entries = text.split(',').map((s) => s.trim()).filter(Boolean);
  if (entries.length === 0) throw new Error('--faults: name at least one fault');
  return entries.map((entry) => {
    const [kind, service, extra] = entry.split(':');
    if (!(FAULT_KINDS as readonly string[]).includes(kind!)) throw new Error(`--faults: '${entry}': the kind must be one of ${FAULT_KINDS.join(', ')}`);
    if (extra !== undefined) throw new Error(`--faults: '${entry}': expected kind or kind:service`);
    if (kind === 'broker-kill' || kind === 'registry-kill') {
      if (service !== undefined) throw new Error(`--faults: '${entry}': ${kind} takes no service`);
      return { kind };
    }
    if (service === undefined) throw new Error(`--faults: '${entry}': ${kind} needs a service, e.g. ${kind}:aggregate`);
    if (!(SERVICE_NAMES as readonly string[]).includes(service)) throw new Error(`--faults: '${entry}': the service must be one of ${SERVICE_NAMES.join(', ')}`);
    return { kind: kind as FaultKind, service: service as ServiceName };
  });
}

export function drillOptions(raw: RawFlags): DrillOptions {
  const parsed = FlagsSchema.safeParse(raw);
  if (!parsed.success) {
    throw new Error(parsed.error.issues.map((i) => i.message).join('; '));
  }
  const flags = parsed.data;
  const quick = flags.quick ?? false;
  const sessionTimeoutMs = flags.sessionTimeoutMs ?? 6_000;
  return {
    json: flags.json ?? false,
    quick,
    seed: flags.seed ?? 1,
    dir: flags.dir,
    keep: flags.keep ?? false,
    rate: flags.rate ?? (quick ? 200 : 300),
    faults: parseFaults(flags.faults ?? (quick ? QUICK_FAULTS : FULL_FAULTS)),
    sessionTimeoutMs,
    healthStallMs: flags.healthStallMs,
    warmupMs: quick ? 8_000 : 15_000,
    settleMs: quick ? 3_000 : 8_000,
    recoveryTimeoutMs: quick ? 60_000 : 90_000,
    catchUpTimeoutMs: quick ? 90_000 : 150_000,
    haltTimeoutMs: 60_000,
    budgetMs: quick ? 360_000 : 510_000,
  };
}
