import { z } from 'zod';
import { DEFAULT_COMPATIBILITY, COMPATIBILITY_LEVELS, type CompatibilityLevel } from './compatibility.ts';

/**
 * The registry's state, rebuilt by applying the records of its compacted topic in order.
 * A record's key names what it sets (a subject version, or a compatibility config); the
 * latest value per key wins, which is exactly what log compaction keeps.
 */
export const SchemaRecordSchema = z.object({
  keytype: z.literal('SCHEMA'),
  subject: z.string(),
  version: z.number().int().positive(),
  id: z.number().int().positive(),
  schema: z.string(),
  deleted: z.boolean(),
});
export const ConfigRecordSchema = z.object({
  keytype: z.literal('CONFIG'),
  subject: z.string().nullable(),
  compatibility: z.enum(COMPATIBILITY_LEVELS).nullable(),
});
export const RegistryRecordSchema = z.discriminatedUnion('keytype', [SchemaRecordSchema, ConfigRecordSchema]);
export type SchemaRecord = z.infer<typeof SchemaRecordSchema>;
export type ConfigRecord = z.infer<typeof ConfigRecordSchema>;
export type RegistryRecord = z.infer<typeof RegistryRecordSchema>;

/** The compaction key of a record. */
export function recordKey(record: RegistryRecord): string {
  return record.keytype === 'SCHEMA'
    ? JSON.stringify({ keytype: 'SCHEMA', subject: record.subject, version: record.version })
    : JSON.stringify({ keytype: 'CONFIG', subject: record.subject });
}

export class RegistryState {
  private readonly subjects = new Map<string, Map<number, SchemaRecord>>();
  private readonly schemasById = new Map<number, string>();
  private readonly idsBySchema = new Map<string, number>();
  private readonly subjectConfig = new Map<string, CompatibilityLevel>();
  private globalConfig: CompatibilityLevel = DEFAULT_COMPATIBILITY;
  private maxId = 0;

  apply(record: RegistryRecord): void {
    if (record.keytype === 'CONFIG') {
      if (record.subject === null) this.globalConfig = record.compatibility ?? DEFAULT_COMPATIBILITY;
      else if (record.compatibility === null) this.subjectConfig.delete(record.subject);
      else this.subjectConfig.set(record.subject, record.compatibility);
      return;
    }
    let versions = this.subjects.get(record.subject);
    if (!versions) this.subjects.set(record.subject, (versions = new Map()));
    versions.set(record.version, record);
    // Ids are global and never reused, even when every version using one is deleted.
    this.schemasById.set(record.id, record.schema);
    this.idsBySchema.set(record.schema, record.id);
    this.maxId = Math.max(this.maxId, record.id);
  }

  /** Subjects with at least one live (or, with `deleted`, any) version. */
  subjectNames(includeDeleted = false): string[] {
    return [...this.subjects.entries()].filter(([, v]) => [...v.values()].some((r) => includeDeleted || !r.deleted)).map(([s]) => s).sort();
  }

  versions(subject: string, includeDeleted = false): SchemaRecord[] {
    const versions = this.subjects.get(subject);
    if (!versions) return [];
    return [...versions.values()].filter((r) => includeDeleted || !r.deleted).sort((a, b) => a.version - b.version);
  }

  /** The next version number: after every version ever registered, deleted ones included. */
  nextVersion(subject: string): number {
    return Math.max(0, ...this.versions(subject, true).map((r) => r.version)) + 1;
  }

  schemaById(id: number): string | undefined {
    return this.schemasById.get(id);
  }

  idForSchema(text: string): number | undefined {
    return this.idsBySchema.get(text);
  }

  nextId(): number {
    return this.maxId + 1;
  }

  subjectsOfId(id: number): { subject: string; version: number }[] {
    const found: { subject: string; version: number }[] = [];
    for (const [subject, versions] of this.subjects) for (const r of versions.values()) if (r.id === id && !r.deleted) found.push({ subject, version: r.version });
    return found;
  }

  compatibility(subject?: string): CompatibilityLevel | undefined {
    return subject === undefined ? this.globalConfig : this.subjectConfig.get(subject);
  }

  effectiveCompatibility(subject: string): CompatibilityLevel {
    return this.subjectConfig.get(subject) ?? this.globalConfig;
  }
}
