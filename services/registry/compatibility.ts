import avro from 'avsc';

/**
 * Schema compatibility as Confluent defines it, decided by Avro schema resolution (avsc):
 * BACKWARD: the new schema can read data written with the old one(s);
 * FORWARD: the old schema(s) can read data written with the new one; FULL: both.
 * Plain levels compare with the latest version, _TRANSITIVE ones with every version.
 */
export const COMPATIBILITY_LEVELS = ['NONE', 'BACKWARD', 'BACKWARD_TRANSITIVE', 'FORWARD', 'FORWARD_TRANSITIVE', 'FULL', 'FULL_TRANSITIVE'] as const;
export type CompatibilityLevel = (typeof COMPATIBILITY_LEVELS)[number];
/** Confluent's registry default, part of the protocol it mirrors, not a setting of this project. */
export const DEFAULT_COMPATIBILITY: CompatibilityLevel = 'BACKWARD';

export function isCompatibilityLevel(value: unknown): value is CompatibilityLevel {
  return typeof value === 'string' && (COMPATIBILITY_LEVELS as readonly string[]).includes(value);
}

export interface CompatibilityResult {
  compatible: boolean;
  messages: string[];
}

/** `existing` is ordered oldest first; only its last element counts for non-transitive levels. */
export function checkCompatibility(candidate: avro.Type, existing: readonly avro.Type[], level: CompatibilityLevel): CompatibilityResult {
  if (level === 'NONE' || existing.length === 0) return { compatible: true, messages: [] };
  const against = level.endsWith('_TRANSITIVE') ? existing : existing.slice(-1);
  const backward = level.startsWith('BACKWARD') || level.startsWith('FULL');
  const forward = level.startsWith('FORWARD') || level.startsWith('FULL');
  const messages: string[] = [];
  against.forEach((old, i) => {
    const which = level.endsWith('_TRANSITIVE') ? `version index ${i}` : 'the latest version';
    if (backward) {
      const problem = resolutionProblem(candidate, old);
      if (problem) messages.push(`BACKWARD: the new schema cannot read data written with ${which}: ${problem}`);
    }
    if (forward) {
      const problem = resolutionProblem(old, candidate);
      if (problem) messages.push(`FORWARD: ${which} cannot read data written with the new schema: ${problem}`);
    }
  });
  return { compatible: messages.length === 0, messages };
}

/** Why `reader` cannot resolve data written with `writer`, or undefined when it can. */
export function resolutionProblem(reader: avro.Type, writer: avro.Type): string | undefined {
  try {
    reader.createResolver(writer);
    return undefined;
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
}
