import { defineContract } from './codec.ts';

/** A published definition on exp.definitions (schemas/ExperimentDefinitionRecord.avsc), keyed by experiment; how readers trust one: ../definitionRecord.ts. */
export interface DefinitionRecordFields {
  experimentId: string;
  version: number;
  appliedAt: number;
  /** The definition as JSON. */
  definition: string;
  commandId: string | null;
  definedBy: string | null;
  auditSequence: number | null;
  publisher: string | null;
}

export interface DefinitionRecord extends DefinitionRecordFields {
  signature: string | null;
}

export const definitionRecords = defineContract<DefinitionRecord>({ topic: 'definitions', schema: 'definition', key: (d) => d.experimentId });
