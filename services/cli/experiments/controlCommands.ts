import { randomUUID, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Partitioners, type Kafka } from 'kafkajs';
import { signedCommand } from '../../common/commandSigning.ts';
import { auditRecords, definedVersion, type AuditRecord } from '../../common/contracts/audit.ts';
import { controlCommands, type ControlCommand } from '../../common/contracts/controlCommands.ts';
import { PipelineError, errorMessage } from '../../common/errors.ts';
import type { ExperimentDefinition } from '../../common/experimentDefinition.ts';
import type { LifecycleAction } from '../../common/experimentLifecycle.ts';
import type { Logger } from '../../common/logger.ts';
import type { SchemaRegistryClient } from '../../common/schemaRegistryClient.ts';
import { privateKeyFromPem } from '../../common/signing.ts';
import { ensureTopics } from '../../common/topicAdmin.ts';
import type { TopicNames } from '../../common/topics.ts';

/**
 * Commands signed with the caller's own key, put on exp.control, and the control service's
 * decision on each, read from exp.audit: how `expctl experiments apply | start | conclude |
 * archive` change experiments. Nothing here writes a definition or a status: the control
 * service verifies the signature, the role, freshness and nonce, judges the change, and
 * publishes (or refuses) in the transaction that audits it.
 */
export interface CommandContext {
  kafka: Kafka;
  registry: SchemaRegistryClient;
  topics: TopicNames;
  logger: Logger;
}

export interface CommandSigner {
  principal: string;
  privateKey: KeyObject;
}

export interface CommandOutcome {
  experimentId: string;
  action: LifecycleAction;
  commandId: string;
  /** PENDING: no decision on exp.audit within the wait. */
  decision: 'ACCEPTED' | 'REJECTED' | 'PENDING';
  reason: string;
  auditSequence: number | null;
  /** DEFINE: the version published (or kept, when unchanged). */
  version?: number;
  changed?: boolean;
}

/** The caller's signing identity: a PKCS#8 PEM key file and the principal the keyring knows it as. */
export function loadSigner(keyFile: string | undefined, principal: string | undefined): CommandSigner {
  if (!keyFile) throw new PipelineError('INPUT_INVALID', 'no signing key: pass --key-file or set EXPCTL_KEY_FILE (your private key, made with `expctl keys generate <you> --roles experimenter`)');
  if (!principal) throw new PipelineError('INPUT_INVALID', 'no principal: pass --principal or set EXPCTL_PRINCIPAL (your name in the keyring)');
  try {
    return { principal, privateKey: privateKeyFromPem(readFileSync(keyFile, 'utf8')) };
  } catch (err) {
    throw new PipelineError('INPUT_INVALID', `--key-file ${keyFile}: ${errorMessage(err)}`);
  }
}

/** Publishes signed DEFINE commands for the definitions and returns the control service's decision on each. */
export async function applyDefinitions(context: CommandContext, signer: CommandSigner, definitions: ExperimentDefinition[], reason: string, timeoutMs?: number): Promise<CommandOutcome[]> {
  const commands = definitions.map((d) => signedCommand({ experimentId: d.id, action: 'DEFINE', reason, payload: JSON.stringify(d) }, signer.principal, signer.privateKey));
  return submitCommands(context, commands, timeoutMs);
}

/** One lifecycle move (START, CONCLUDE with a decision, ARCHIVE, HALT, RESUME) of one experiment. */
export async function moveExperiment(context: CommandContext, signer: CommandSigner, experimentId: string, action: Exclude<LifecycleAction, 'DEFINE'>, reason: string, decision?: string, timeoutMs?: number): Promise<CommandOutcome> {
  const command = signedCommand({ experimentId, action, reason, ...(decision !== undefined ? { payload: JSON.stringify({ decision }) } : {}) }, signer.principal, signer.privateKey);
  const [outcome] = await submitCommands(context, [command], timeoutMs);
  return outcome!;
}

/** Puts signed commands on exp.control and waits (up to `timeoutMs`) for the control service's decision on each. */
export async function submitCommands(context: CommandContext, commands: ControlCommand[], timeoutMs = 30_000): Promise<CommandOutcome[]> {
  const { kafka, topics } = context;
  await ensureTopics(kafka, topics, ['control', 'audit']);
  const commandOut = await controlCommands.bind(context.registry, topics);
  const decisions = await watchDecisions(kafka, topics.audit, new Set(commands.map((c) => c.commandId)), timeoutMs);
  try {
    const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1, createPartitioner: Partitioners.DefaultPartitioner });
    await producer.connect();
    try {
      // In requests well below the broker's message.max.bytes (1 MiB by default, for a whole
      // batch): an apply of up to MAX_FILES_PER_APPLY definitions, each up to tens of KB, is more.
      for (const messages of inChunks(commands.map((c) => commandOut.message(c)), SEND_CHUNK_BYTES)) {
        await producer.send({ topic: topics.control, acks: -1, messages });
      }
    } finally {
      await producer.disconnect();
    }
    const decided = await decisions.all;
    return commands.map((c) => {
      const record = decided.get(c.commandId);
      const outcome: CommandOutcome = { experimentId: c.experimentId, action: c.action as LifecycleAction, commandId: c.commandId, decision: record?.decision ?? 'PENDING', reason: record?.reason ?? 'the control service has not decided within the wait (is it running?)', auditSequence: record?.sequence ?? null };
      const defined = record?.decision === 'ACCEPTED' && c.action === 'DEFINE' ? definedVersion(record.reason) : undefined;
      return defined ? { ...outcome, ...defined } : outcome;
    });
  } finally {
    await decisions.stop();
  }
}

/** Bytes of commands sent in one request. */
const SEND_CHUNK_BYTES = 256 * 1024;

/** Consecutive groups of messages of at most `maxBytes` each (a larger message alone), in order. */
export function inChunks<T extends { value: Buffer }>(messages: T[], maxBytes: number): T[][] {
  const chunks: T[][] = [];
  let current: T[] = [];
  let bytes = 0;
  for (const message of messages) {
    if (current.length > 0 && bytes + message.value.length > maxBytes) {
      chunks.push(current);
      current = [];
      bytes = 0;
    }
    current.push(message);
    bytes += message.value.length;
  }
  if (current.length > 0) chunks.push(current);
  return chunks;
}

/**
 * Reads exp.audit from its current end (taken before the commands are sent, so no decision
 * can be missed) until every command id has its decision or the time is up.
 */
async function watchDecisions(kafka: Kafka, topic: string, commandIds: Set<string>, timeoutMs: number): Promise<{ all: Promise<Map<string, AuditRecord>>; stop(): Promise<void> }> {
  const admin = kafka.admin();
  await admin.connect();
  const ends = await admin.fetchTopicOffsets(topic).finally(() => admin.disconnect());
  const from = new Map(ends.map((e) => [e.partition, BigInt(e.high)]));
  const found = new Map<string, AuditRecord>();
  const consumer = kafka.consumer({ groupId: `expctl-decisions-${randomUUID()}`, readUncommitted: false, maxWaitTimeInMs: 100 });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  let done: () => void = () => {};
  const all = new Promise<Map<string, AuditRecord>>((resolve) => {
    const timer = setTimeout(() => resolve(found), timeoutMs);
    done = () => {
      clearTimeout(timer);
      resolve(found);
    };
  });
  await consumer.run({
    eachMessage: async ({ partition, message }) => {
      if (BigInt(message.offset) < (from.get(partition) ?? 0n)) return;
      const decoded = auditRecords.decode(message.value);
      if (!decoded.ok) return;
      const record = decoded.value;
      if (record.commandId && commandIds.has(record.commandId)) found.set(record.commandId, record);
      if (found.size === commandIds.size) done();
    },
  });
  for (const [partition, offset] of from) consumer.seek({ topic, partition, offset: offset.toString() });
  return {
    all,
    stop: async () => {
      done(); // no timer left behind when sending failed
      await consumer.disconnect();
    },
  };
}
