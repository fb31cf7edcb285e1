import type { KeyObject } from 'node:crypto';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyReply, type FastifyRequest } from 'fastify';
import { Partitioners, type Kafka, type Producer } from 'kafkajs';
import { Counter, type Registry } from 'prom-client';
import { z } from 'zod';
import type { ExperimentDelta } from '../common/aggregateDelta.ts';
import { signedCommand } from '../common/commandSigning.ts';
import { CompactedTopicTable } from '../common/compactedTopicTable.ts';
import { CONFIG_DEFAULTS } from '../common/config.ts';
import { aggregates } from '../common/contracts/aggregates.ts';
import { controlCommands } from '../common/contracts/controlCommands.ts';
import { UnreadableRecords } from '../common/contracts/unreadablePolicy.ts';
import { DefinitionsTable } from '../common/definitionsTable.ts';
import type { LifecycleAction } from '../common/experimentLifecycle.ts';
import { DEFINITION_LIMITS } from '../common/experimentDefinition.ts';
import { experimentStatusTable } from '../common/experimentStatus.ts';
import { mergeDelta, type TotalsHolder } from '../common/experimentTotals.ts';
import { brokerProbe } from '../common/brokerProbe.ts';
import { combineHealth, type HealthSource } from '../common/health.ts';
import type { Logger } from '../common/logger.ts';
import { LogRateLimiter } from '../common/logRateLimiter.ts';
import type { SchemaRegistryClient } from '../common/schemaRegistryClient.ts';
import { ensureTopics } from '../common/topicAdmin.ts';
import type { TopicNames } from '../common/topics.ts';
import { definedVersion, type AuditRecord } from '../common/contracts/audit.ts';
import { AuditLog, AuditLogBusy } from './auditLog.ts';
import { AuthThrottle } from './authThrottle.ts';
import { API_REFUSAL_HEADER } from './decideCommand.ts';
import type { Keyring, Principal, Role } from './keyring.ts';
import { liveResults } from './liveResults.ts';
import { registerResultsPage } from './resultsPage.ts';
import { ResultsHistory } from './resultsHistory.ts';
import { serviceLags } from './serviceLags.ts';
import { anomalies as anomalyContract, type Anomaly } from '../common/contracts/anomalies.ts';
import { ACTION_ROLES, COMMAND_LIMITS } from './verifyCommand.ts';
import { RefusalAudit, type RefusalCode } from './refusalAudit.ts';

/**
 * The admin HTTP API. Every call but the liveness and readiness probes carries
 * `Authorization: Bearer <token>`; tokens are looked up by their SHA-256 in the keyring and
 * each route names the roles it admits. Commands (halt and resume for operators; define,
 * start, conclude and archive for experimenters) do not change anything themselves: the API
 * signs a command as its own principal (naming the caller in the reason) and puts it on
 * exp.control, where the control service verifies and audits it like any other, then waits
 * for that decision. A refused command (no token, wrong token, wrong role, throttled) is reported to the audit log as a signed refusal note, at most one at once and one
 * summary with a count per caller and window (RefusalAudit). Failed authentications are
 * throttled per address; a valid token never is. Reads come from the topics: exp.state,
 * exp.definitions, exp.audit (the newest records in memory, older pages read back from the
 * topic: AuditLog) and exp.aggregates (live totals).
 */
export interface AdminApiOptions {
  kafka: Kafka;
  registry: SchemaRegistryClient;
  topics: TopicNames;
  keyring: Keyring;
  /** The API's own signing identity; without it commands answer 503. */
  signer: { principal: string; privateKey: KeyObject } | undefined;
  host: string;
  port: number;
  authFailuresAllowed: number;
  /** Audit records kept in memory; older pages are read from exp.audit. Default 10,000. */
  auditKept?: number;
  /** A caller's refused halts and resumes within this window are audited as one record and one summary. Default 60 s. */
  refusalAuditWindowMs?: number;
  metrics: Registry;
  logger: Logger;
  /** How long halt/resume wait for the control service's decision. */
  decisionTimeoutMs?: number;
  /** The control loop's health, reported on /healthz and /readyz beside the API's own readers. */
  controlHealth?: HealthSource;
}

export interface AdminApi extends HealthSource {
  url: string;
  close(): Promise<void>;
}

/** Anomalies kept in memory for the results page (the newest, over all experiments). */
const ANOMALIES_KEPT = 5_000;
const READ_ROLES: readonly Role[] = ['analyst', 'operator', 'experimenter', 'guardian'];
/** Caps on what a request may carry; each refusal names the field and the cap (400). */
export const API_LIMITS = {
  reasonLength: 500,
  auditPage: 1_000,
  bodyBytes: 16 * 1024,
  /** PUT /experiments/:id/definition: a definition file's cap plus room for the reason and JSON quoting. */
  definitionBodyBytes: DEFINITION_LIMITS.fileBytes + 16 * 1024,
  tokenLength: 512,
} as const;
const TOKEN_HEADER = new RegExp(`^Bearer [\\x21-\\x7e]{1,${API_LIMITS.tokenLength}}$`);
const experimentId = z
  .string()
  .max(DEFINITION_LIMITS.idLength, { error: (issue) => `at most ${DEFINITION_LIMITS.idLength} characters (got ${String(issue.input).length})` })
  .regex(/^[A-Za-z0-9._-]+$/, 'an experiment id: letters, digits, dot, dash, underscore');
const ExperimentParam = z.strictObject({ id: experimentId });
const CommandBody = z.strictObject({ reason: z.string().trim().min(3, 'give a reason (at least 3 characters)').max(API_LIMITS.reasonLength, { error: (issue) => `at most ${API_LIMITS.reasonLength} characters (got ${String(issue.input).length})` }) });
const AuditQuery = z.strictObject({
  limit: z.coerce.number().int().min(1).max(API_LIMITS.auditPage, `at most ${API_LIMITS.auditPage} records a page`).default(100),
  /** Page forward from this sequence (0: from the first record); without it, the newest records. */
  after: z.coerce.number().int().min(0).max(Number.MAX_SAFE_INTEGER).optional(),
  experimentId: experimentId.optional(),
});
const reason = CommandBody.shape.reason;
/** The definition as JSON travels in the DEFINE command's payload, capped by COMMAND_LIMITS.payload (the request body by API_LIMITS.definitionBodyBytes). */
const DefineBody = z.strictObject({ reason, definition: z.record(z.string(), z.unknown()) });
const ConcludeBody = z.strictObject({ reason, decision: z.string().max(200, { error: (issue) => `at most 200 characters (got ${String(issue.input).length})` }) });
/** The lifecycle moves the API offers, and who may ask for each (DEFINE is PUT /experiments/:id/definition). */
const MOVE_ROLES = { HALT: ['operator'], RESUME: ['operator'], START: ['experimenter'], CONCLUDE: ['experimenter'], ARCHIVE: ['experimenter'] } as const satisfies Partial<Record<LifecycleAction, readonly Role[]>>;

export async function startAdminApi(options: AdminApiOptions): Promise<AdminApi> {
  const { kafka, topics, keyring } = options;
  const log = options.logger.child({ module: 'admin-api' });
  await ensureTopics(kafka, topics, ['control', 'state', 'audit', 'definitions', 'aggregates', 'anomalies']);
  const commandOut = await controlCommands.bind(options.registry, topics);
  const unreadable = new UnreadableRecords(options.metrics, log);
  const definitions = new DefinitionsTable(kafka, topics.definitions, log, { keyring, metrics: options.metrics });
  const statuses = experimentStatusTable(kafka, topics.state, log, { metrics: options.metrics });
  // Halt and resume wait for the control service's decision on their command: the audit
  // table hands each new record to the waiter for its command id.
  const decisionWaiters = new Map<string, (record: AuditRecord) => void>();
  const audit = new AuditLog({
    kafka, topic: topics.audit, logger: log, kept: options.auditKept ?? CONFIG_DEFAULTS.control.auditKept, unreadable,
    onRecord: (record) => {
      if (record.commandId) decisionWaiters.get(record.commandId)?.(record);
    },
  });
  const numbersLog = new LogRateLimiter(log);
  const history = new ResultsHistory();
  const totals = new CompactedTopicTable<TotalsHolder, { delta: ExperimentDelta; at: number }>({
    kafka, topic: topics.aggregates, logger: log,
    decode: (_key, value, offset, partition, timestamp) => {
      const decoded = aggregates.decode(value);
      if (!decoded.ok) return void unreadable.handle('aggregates', { topic: topics.aggregates, partition, offset }, decoded);
      return { key: decoded.value.experimentId, value: { delta: decoded.value, at: timestamp } };
    },
    merge: (current, { delta, at }) => {
      const holder = current ?? { variants: {} };
      // Like the guard: a part that is not finite stays out of the totals the results are computed from.
      for (const part of mergeDelta(holder, delta)) numbersLog.warn(part.reason, { experimentId: delta.experimentId, ...part }, 'admin-api.delta_skipped: part of an aggregate delta is not finite; live results leave it out');
      history.record(delta.experimentId, at, definitions.get(delta.experimentId), holder);
      return holder;
    },
  });
  // The newest anomalies (guard, ingest, control), for the results page and `expctl status`.
  const anomalyLog = new CompactedTopicTable<Anomaly>({
    kafka, topic: topics.anomalies, logger: log, retain: ANOMALIES_KEPT,
    decode: (_key, value, offset, partition) => {
      const decoded = anomalyContract.decode(value);
      if (!decoded.ok) return void unreadable.handle('anomalies', { topic: topics.anomalies, partition, offset }, decoded);
      return { key: `${partition}:${offset.padStart(20, '0')}`, value: decoded.value };
    },
  });
  // Definitions first: the history's points are computed with the definition in force.
  await definitions.start();
  await Promise.all([statuses.start(), audit.start(), totals.start(), anomalyLog.start()]);
  const anomaliesOf = (experimentId: string) => anomalyLog.values().filter((a) => a.experimentId === experimentId).sort((a, b) => a.detectedAt - b.detectedAt);
  const producer: Producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1, createPartitioner: Partitioners.DefaultPartitioner });
  await producer.connect();

  const throttle = new AuthThrottle(options.authFailuresAllowed);
  const authFailures = new Counter({ name: 'admin_api_auth_failures_total', help: 'Admin API calls refused for authentication or authorization', labelNames: ['reason'], registers: [options.metrics] });
  const refusedLog = new LogRateLimiter(log);
  // Path parameters as long as Node takes a request line: an over-long id gets the route's 400
  // naming the field and its cap, not the router's 414.
  const app = Fastify({ loggerInstance: log as FastifyBaseLogger, logController: new LogController({ disableRequestLogging: true }), bodyLimit: API_LIMITS.bodyBytes, trustProxy: false, routerOptions: { maxParamLength: 16 * 1024 } });

  const publish = async (command: ReturnType<typeof signedCommand>, refusal?: string) => {
    await producer.send({ topic: topics.control, acks: -1, messages: [{ key: command.experimentId, value: commandOut.encode(command), ...(refusal ? { headers: { [API_REFUSAL_HEADER]: refusal } } : {}) }] });
  };
  const signer = options.signer;
  const refusals = signer
    ? new RefusalAudit({
        windowMs: options.refusalAuditWindowMs ?? CONFIG_DEFAULTS.control.refusalAuditWindowMs,
        // A refused attempt goes into the audit chain; failing to record it must not change the answer.
        record: (note) =>
          publish(signedCommand({ experimentId: note.experimentId, action: note.action, reason: note.reason, evidence: JSON.stringify({ refusals: note.refusals }) }, signer.principal, signer.privateKey), note.code).catch((err: unknown) =>
            log.error({ err }, 'could not record a refused call in the audit log'),
          ),
      })
    : undefined;
  refusals?.start();

  /** Authenticates the caller and checks the route's roles; on failure replies and returns undefined. */
  const authorize = async (request: FastifyRequest, reply: FastifyReply, roles: readonly Role[], attempted?: { action: LifecycleAction; experimentId: string }): Promise<Principal | undefined> => {
    const address = request.ip;
    const header = request.headers.authorization;
    const token = typeof header === 'string' && TOKEN_HEADER.test(header) ? header.slice(7) : undefined;
    const principal = token === undefined ? undefined : keyring.principalForToken(token);
    let refusal: { status: number; code: RefusalCode; error: string; message: string; retryAfterS?: number } | undefined;
    if (!principal) {
      // The token is checked first: a valid one is served whatever its address did before
      // (the stop button cannot be locked out); only failed attempts are counted and throttled.
      const wait = throttle.blockedFor(address);
      if (wait > 0) {
        const retryAfterS = Math.ceil(wait / 1000);
        refusal = { status: 429, code: 'THROTTLED', error: 'TOO_MANY_AUTH_FAILURES', message: `too many failed authentications from ${address}; try again in ${retryAfterS} s`, retryAfterS };
      } else {
        throttle.recordFailure(address);
        refusal = { status: 401, code: 'UNAUTHENTICATED', error: 'UNAUTHENTICATED', message: header === undefined ? 'no credentials: send Authorization: Bearer <token>' : 'the token is not valid' };
      }
    } else if (!roles.some((r) => principal.roles.has(r))) {
      refusal = { status: 403, code: 'FORBIDDEN', error: 'FORBIDDEN', message: `${principal.name} lacks the role for this call (one of ${roles.join(', ')})` };
    }
    if (!refusal) return principal;
    authFailures.inc({ reason: refusal.code });
    refusedLog.warn(refusal.code, { address, method: request.method, url: request.url.slice(0, 200), principal: principal?.name, refusal: refusal.code }, 'admin-api.refused');
    if (attempted && refusals) {
      const who = principal ? principal.name : header === undefined ? 'a caller without a token' : 'a caller with an unknown token';
      await refusals.refuse({ code: refusal.code, status: refusal.status, who, address, ...attempted });
    }
    if (refusal.retryAfterS !== undefined) void reply.header('retry-after', String(refusal.retryAfterS));
    void reply.status(refusal.status).send({ error: refusal.error, message: refusal.message });
    return undefined;
  };

  const badRequest = (reply: FastifyReply, error: z.ZodError) => reply.status(400).send({ error: 'BAD_REQUEST', message: error.issues.map((i) => `${i.path.join('.') || '(body)'}: ${i.message}`).join('; ') });

  const experimentSummary = (id: string) => {
    const published = definitions.get(id);
    const status = statuses.get(id);
    const last = anomaliesOf(id).at(-1);
    return {
      experimentId: id, name: published?.definition.name ?? null, owner: published?.definition.owner ?? null, definitionVersion: published?.version ?? null,
      status: status?.status ?? null, since: status?.since ?? null, by: status?.by ?? null, reason: status?.reason ?? null,
      users: Object.values(totals.get(id)?.variants ?? {}).reduce((n, v) => n + v.users, 0),
      lastAnomaly: last ? { type: last.type, severity: last.severity, detectedAt: last.detectedAt, halted: last.halted, variantId: last.variantId, metric: last.metric } : null,
    };
  };
  const lags = serviceLags(kafka, topics);
  const experimentIds = () => [...new Set([...definitions.all().map((d) => d.experimentId), ...statuses.values().map((s) => s.experimentId)])].sort();

  // The API answers from its readers of exp.state, exp.audit, exp.aggregates and
  // exp.definitions: a reader that is down makes its answers stale, which /healthz says.
  const health = combineHealth({ control: options.controlHealth, definitions, state: statuses, audit, aggregates: totals, anomalies: anomalyLog });
  app.get('/healthz', async (_request, reply) => {
    const report = health.health();
    return reply.status(report.healthy ? 200 : 503).send({ status: report.healthy ? 'ok' : 'unhealthy', problems: report.problems });
  });
  const broker = brokerProbe(kafka);
  app.get('/readyz', async (_request, reply) => {
    const checks = { broker: (await broker.check()).healthy, definitions: true, state: statuses.ready, audit: audit.ready, aggregates: totals.ready, control: options.controlHealth?.health().healthy ?? true, signer: options.signer !== undefined };
    const ready = Object.entries(checks).every(([k, v]) => v || k === 'signer');
    return reply.status(ready ? 200 : 503).send({ status: ready ? 'ready' : 'not ready', checks });
  });
  app.get('/metrics', async (request, reply) => {
    if (!(await authorize(request, reply, READ_ROLES))) return reply;
    return reply.type(options.metrics.contentType).send(await options.metrics.metrics());
  });
  app.get('/experiments', async (request, reply) => {
    if (!(await authorize(request, reply, READ_ROLES))) return reply;
    return {
      experiments: experimentIds().map((id) => {
        const published = definitions.get(id);
        const status = statuses.get(id);
        return experimentSummary(id);
      }),
    };
  });
  app.get('/status', async (request, reply) => {
    if (!(await authorize(request, reply, READ_ROLES))) return reply;
    const services = await lags.current().catch((err: unknown) => {
      log.warn({ err }, 'admin-api.lags_unavailable');
      return null;
    });
    return { experiments: experimentIds().map(experimentSummary), services };
  });
  app.get('/experiments/:id/history', async (request, reply) => {
    if (!(await authorize(request, reply, READ_ROLES))) return reply;
    const params = ExperimentParam.safeParse(request.params);
    if (!params.success) return badRequest(reply, params.error);
    return { experimentId: params.data.id, points: history.of(params.data.id) };
  });
  app.get('/experiments/:id/anomalies', async (request, reply) => {
    if (!(await authorize(request, reply, READ_ROLES))) return reply;
    const params = ExperimentParam.safeParse(request.params);
    if (!params.success) return badRequest(reply, params.error);
    return { experimentId: params.data.id, anomalies: anomaliesOf(params.data.id) };
  });
  app.get('/whoami', async (request, reply) => {
    const principal = await authorize(request, reply, READ_ROLES);
    if (!principal) return reply;
    return { principal: principal.name, roles: [...principal.roles].sort() };
  });
  registerResultsPage(app);
  app.get('/experiments/:id/results', async (request, reply) => {
    if (!(await authorize(request, reply, READ_ROLES))) return reply;
    const params = ExperimentParam.safeParse(request.params);
    if (!params.success) return badRequest(reply, params.error);
    const id = params.data.id;
    if (!definitions.get(id) && !totals.get(id) && !statuses.get(id)) return reply.status(404).send({ error: 'NOT_FOUND', message: `no experiment ${id}` });
    return liveResults(id, definitions.get(id), totals.get(id), statuses.get(id));
  });
  app.get('/audit', async (request, reply) => {
    if (!(await authorize(request, reply, ['operator', 'analyst']))) return reply;
    const query = AuditQuery.safeParse(request.query);
    if (!query.success) return badRequest(reply, query.error);
    const { after, limit, experimentId } = query.data;
    if (after === undefined) return { records: audit.newest(limit, experimentId), next: null, head: audit.head };
    try {
      return await audit.page(after, limit, experimentId);
    } catch (err) {
      if (!(err instanceof AuditLogBusy)) log.error({ err }, 'reading an audit page failed');
      return reply.status(503).header('retry-after', '1').send({ error: 'AUDIT_UNAVAILABLE', message: err instanceof AuditLogBusy ? err.message : `could not read ${topics.audit}: ${(err as Error).message}` });
    }
  });

  /** Signs the caller's command as the API, publishes it and answers with the control service's decision. */
  const submit = async (reply: FastifyReply, principal: Principal, fields: { experimentId: string; action: LifecycleAction; reason: string; payload?: string }) => {
    if (!options.signer) return reply.status(503).send({ error: 'NO_SIGNING_KEY', message: 'the admin API has no signing key (ADMIN_API_KEY_FILE); it serves reads only' });
    const needed = ACTION_ROLES[fields.action] ?? [];
    if (!needed.some((role) => keyring.principal(options.signer!.principal)?.roles.has(role))) {
      return reply.status(503).send({ error: 'API_LACKS_ROLE', message: `the admin API signs as ${options.signer.principal}, which lacks the role for ${fields.action} (one of ${needed.join(', ')}) in the keyring` });
    }
    const command = signedCommand({ ...fields, reason: `${fields.reason} (requested by ${principal.name} via the admin API)` }, options.signer.principal, options.signer.privateKey);
    const { experimentId } = fields;
    // Settled once the readers show what the decision changed (status and definition commit with the audit record).
    const shown = (record: AuditRecord) => fields.action === 'DEFINE' ? definedVersion(record.reason)?.version === definitions.get(experimentId)?.version && statuses.get(experimentId) !== undefined : record.reasonCode === 'HALT_UNCHANGED' || statuses.get(experimentId)?.commandId === command.commandId;
    const decided = waitForDecision(command.commandId, options.decisionTimeoutMs ?? 10_000, shown);
    await publish(command);
    const decision = await decided;
    if (!decision) return reply.status(202).send({ commandId: command.commandId, decision: 'PENDING', message: 'published on the control topic; the control service has not decided yet' });
    log.info({ principal: principal.name, action: fields.action, experimentId, decision: decision.decision }, 'admin-api.command');
    return reply.status(decision.decision === 'ACCEPTED' ? 200 : 409).send({
      commandId: command.commandId, decision: decision.decision, reason: decision.reason, auditSequence: decision.sequence, status: statuses.get(experimentId) ?? null,
      ...(fields.action === 'DEFINE' ? { definitionVersion: definitions.get(experimentId)?.version ?? null } : {}),
    });
  };

  for (const [action, roles] of Object.entries(MOVE_ROLES) as [keyof typeof MOVE_ROLES, readonly Role[]][]) {
    app.post(`/experiments/:id/${action.toLowerCase()}`, async (request, reply) => {
      const params = ExperimentParam.safeParse(request.params);
      if (!params.success) return badRequest(reply, params.error);
      const experimentId = params.data.id;
      const principal = await authorize(request, reply, roles, { action, experimentId });
      if (!principal) return reply;
      const body = (action === 'CONCLUDE' ? ConcludeBody : CommandBody).safeParse(request.body ?? {});
      if (!body.success) return badRequest(reply, body.error);
      if (!definitions.get(experimentId) && !statuses.get(experimentId)) return reply.status(404).send({ error: 'NOT_FOUND', message: `no experiment ${experimentId}` });
      const decision = 'decision' in body.data ? (body.data as { decision: string }).decision : undefined;
      return submit(reply, principal, { experimentId, action, reason: body.data.reason, ...(decision !== undefined ? { payload: JSON.stringify({ decision }) } : {}) });
    });
  }
  app.put('/experiments/:id/definition', { bodyLimit: API_LIMITS.definitionBodyBytes }, async (request, reply) => {
    const params = ExperimentParam.safeParse(request.params);
    if (!params.success) return badRequest(reply, params.error);
    const experimentId = params.data.id;
    const principal = await authorize(request, reply, ['experimenter'], { action: 'DEFINE', experimentId });
    if (!principal) return reply;
    const body = DefineBody.safeParse(request.body ?? {});
    if (!body.success) return badRequest(reply, body.error);
    // The control service validates the definition and judges the change; the API only carries it,
    // but refuses one the control service would refuse as MALFORMED for its size.
    const payload = JSON.stringify(body.data.definition);
    const maxPayload = COMMAND_LIMITS.payload!;
    if (payload.length > maxPayload) return reply.status(400).send({ error: 'BAD_REQUEST', message: `definition: at most ${maxPayload} characters as JSON (got ${payload.length})` });
    return submit(reply, principal, { experimentId, action: 'DEFINE', reason: body.data.reason, payload });
  });

  /** Call before publishing the command, so its decision cannot arrive unobserved. */
  const waitForDecision = async (commandId: string, timeoutMs: number, shown: (record: AuditRecord) => boolean): Promise<AuditRecord | undefined> => {
    let timer: NodeJS.Timeout | undefined;
    const found = await new Promise<AuditRecord | undefined>((resolve) => {
      decisionWaiters.set(commandId, resolve);
      timer = setTimeout(() => resolve(undefined), timeoutMs);
    }).finally(() => {
      clearTimeout(timer);
      decisionWaiters.delete(commandId);
    });
    // Status and definition are written in the same transaction; give their tables a moment to show them.
    for (let i = 0; i < 40 && found?.decision === 'ACCEPTED' && !shown(found); i++) await sleep(25);
    return found;
  };

  await app.listen({ host: options.host, port: options.port });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : options.port;
  const url = `http://${options.host}:${port}`;
  log.info({ url }, 'admin API listening');
  return {
    url,
    health: health.health,
    close: async () => {
      await app.close();
      await broker.close();
      await refusals?.stop();
      await producer.disconnect().catch(() => {});
      await lags.close();
      await Promise.all([definitions.stop(), statuses.stop(), audit.stop(), totals.stop(), anomalyLog.stop()]);
    },
  };
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
