import { checkCompatibility, isCompatibilityLevel, type CompatibilityLevel, type CompatibilityResult } from './compatibility.ts';
import { RegistryError } from './registryErrors.ts';
import type { RegistryRecord, RegistryState, SchemaRecord } from './registryState.ts';
import { parseSchema } from './schemaText.ts';

/**
 * The registry's operations, independent of HTTP: reads answer from memory; writes are
 * serialised (one at a time in this process, so ids and versions never collide) and go
 * through the durable log before they are visible.
 */
export interface SubjectVersion {
  subject: string;
  version: number;
  id: number;
  schema: string;
}

export class RegistryService {
  private writeQueue: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly state: RegistryState,
    private readonly append: (record: RegistryRecord) => Promise<void>,
  ) {}

  register(subject: string, schema: unknown, schemaType: unknown): Promise<{ id: number }> {
    const parsed = parseSchema(schema, schemaType);
    return this.serialised(async () => {
      const live = this.state.versions(subject);
      const same = live.find((r) => r.schema === parsed.text);
      if (same) return { id: same.id };
      const level = this.state.effectiveCompatibility(subject);
      const result = checkCompatibility(parsed.type, live.map((r) => parseSchema(r.schema, undefined).type), level);
      if (!result.compatible) {
        throw new RegistryError('INCOMPATIBLE_SCHEMA', `Schema being registered is incompatible with an earlier schema for subject "${subject}" (compatibility ${level}): ${result.messages.join('; ')}`);
      }
      const id = this.state.idForSchema(parsed.text) ?? this.state.nextId();
      await this.append({ keytype: 'SCHEMA', subject, version: this.state.nextVersion(subject), id, schema: parsed.text, deleted: false });
      return { id };
    });
  }

  subjects(includeDeleted: boolean): string[] {
    return this.state.subjectNames(includeDeleted);
  }

  versionNumbers(subject: string, includeDeleted: boolean): number[] {
    return this.liveVersions(subject, includeDeleted).map((r) => r.version);
  }

  getVersion(subject: string, version: string, includeDeleted = false): SubjectVersion {
    // The version is checked first, as Confluent's registry does: an invalid one is 42202 whatever the subject.
    const wanted = version === 'latest' || version === '-1' ? undefined : parseVersion(version);
    const versions = this.liveVersions(subject, includeDeleted);
    const record = wanted === undefined ? versions.at(-1) : versions.find((r) => r.version === wanted);
    if (!record) throw new RegistryError('VERSION_NOT_FOUND', `Version ${shorten(version)} not found.`);
    return view(record);
  }

  schemaById(id: string): { schema: string } {
    const schema = /^\d+$/.test(id) ? this.state.schemaById(Number(id)) : undefined;
    if (schema === undefined) throw new RegistryError('SCHEMA_NOT_FOUND', `Schema ${shorten(id)} not found`);
    return { schema };
  }

  subjectVersionsOfId(id: string): { subject: string; version: number }[] {
    this.schemaById(id);
    return this.state.subjectsOfId(Number(id));
  }

  lookup(subject: string, schema: unknown, schemaType: unknown): SubjectVersion {
    const versions = this.liveVersions(subject, false);
    const parsed = parseSchema(schema, schemaType);
    const record = versions.find((r) => r.schema === parsed.text);
    if (!record) throw new RegistryError('SCHEMA_NOT_FOUND', 'Schema not found');
    return view(record);
  }

  /** Compatibility of a candidate with one version, or (version undefined) with what the level requires. */
  checkCompatibility(subject: string, version: string | undefined, schema: unknown, schemaType: unknown): CompatibilityResult {
    const parsed = parseSchema(schema, schemaType);
    const versions = this.liveVersions(subject, false);
    const level = this.state.effectiveCompatibility(subject);
    const against = version === undefined ? versions : [this.getVersion(subject, version)];
    return checkCompatibility(parsed.type, against.map((r) => parseSchema(r.schema, undefined).type), version === undefined ? level : nonTransitive(level));
  }

  getConfig(subject: string | undefined, defaultToGlobal: boolean): { compatibilityLevel: CompatibilityLevel } {
    const level = this.state.compatibility(subject) ?? (defaultToGlobal ? this.state.compatibility() : undefined);
    if (!level) throw new RegistryError('SUBJECT_COMPATIBILITY_NOT_CONFIGURED', `Subject '${subject}' does not have subject-level compatibility configured`);
    return { compatibilityLevel: level };
  }

  setConfig(subject: string | undefined, compatibility: unknown): Promise<{ compatibility: CompatibilityLevel }> {
    if (!isCompatibilityLevel(compatibility)) {
      throw new RegistryError('INVALID_COMPATIBILITY_LEVEL', `Invalid compatibility level ${JSON.stringify(compatibility)}; valid levels: NONE, BACKWARD, BACKWARD_TRANSITIVE, FORWARD, FORWARD_TRANSITIVE, FULL, FULL_TRANSITIVE`);
    }
    return this.serialised(async () => {
      await this.append({ keytype: 'CONFIG', subject: subject ?? null, compatibility });
      return { compatibility };
    });
  }

  deleteSubject(subject: string): Promise<number[]> {
    return this.serialised(async () => {
      const versions = this.liveVersions(subject, false);
      for (const r of versions) await this.append({ ...r, deleted: true });
      return versions.map((r) => r.version);
    });
  }

  deleteVersion(subject: string, version: string): Promise<number> {
    return this.serialised(async () => {
      const record = this.getVersion(subject, version);
      await this.append({ keytype: 'SCHEMA', ...record, deleted: true });
      return record.version;
    });
  }

  private liveVersions(subject: string, includeDeleted: boolean): SchemaRecord[] {
    const versions = this.state.versions(subject, includeDeleted);
    if (versions.length === 0) throw new RegistryError('SUBJECT_NOT_FOUND', `Subject '${shorten(subject)}' not found.`);
    return versions;
  }

  private serialised<T>(write: () => Promise<T>): Promise<T> {
    const next = this.writeQueue.then(write, write);
    this.writeQueue = next.catch(() => undefined);
    return next;
  }
}

/** Versions are Java ints in Confluent's registry: 1 to 2^31 − 1 (−1 and "latest" name the latest). */
const MAX_VERSION = 2 ** 31 - 1;

function parseVersion(version: string): number {
  const n = /^\d{1,10}$/.test(version) ? Number(version) : NaN;
  if (!Number.isInteger(n) || n < 1 || n > MAX_VERSION) {
    throw new RegistryError('INVALID_VERSION', `The specified version '${shorten(version)}' is not a valid version id. Allowed values are between [1, 2^31-1] and the string "latest"`);
  }
  return n;
}

/** A client-supplied value quoted in an error message, cut to a readable length. */
function shorten(value: string, max = 64): string {
  return value.length > max ? `${value.slice(0, max)}… (${value.length} characters)` : value;
}

function nonTransitive(level: CompatibilityLevel): CompatibilityLevel {
  return level.replace('_TRANSITIVE', '') as CompatibilityLevel;
}

function view(r: SchemaRecord): SubjectVersion {
  return { subject: r.subject, version: r.version, id: r.id, schema: r.schema };
}
