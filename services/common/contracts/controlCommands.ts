import { defineContract } from './codec.ts';

/**
 * A command on exp.control (schemas/ControlCommand.avsc), keyed by experiment: the one type
 * the guard, the admin API, the CLI and the control service all write and read. Signed by
 * its issuer (see ../commandSigning.ts).
 */
export interface ControlCommand {
  commandId: string;
  experimentId: string;
  /** HALT, RESUME, DEFINE, START, CONCLUDE or ARCHIVE (the schema's enum); a string as read, since whoever can write the topic is not trusted on content. */
  action: string;
  reason: string;
  /** JSON. */
  evidence: string;
  issuer: string;
  issuedAt: number;
  nonce: string;
  signature: string;
  /** DEFINE: the definition JSON; CONCLUDE: {"decision": ...}; otherwise null or absent. */
  payload?: string | null;
}

export const controlCommands = defineContract<ControlCommand>({
  topic: 'control',
  schema: 'controlCommand',
  key: (c) => c.experimentId,
  toAvro: (c) => ({ ...c, payload: c.payload ?? null }),
});

/** For writers that register the schema themselves (tests, tools) and readers holding an unframed body. */
export const encodeCommandRecord = (command: ControlCommand, schemaId: number): Buffer => controlCommands.encode(command, schemaId);
export const decodeCommandBody = controlCommands.decodeBody;
