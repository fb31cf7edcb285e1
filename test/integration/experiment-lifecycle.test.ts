import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyDefinitions, moveExperiment, type CommandOutcome } from '../../services/cli/experiments/controlCommands.ts';
import type { ExperimentDelta } from '../../services/common/aggregateDelta.ts';
import { openClickHouse } from '../../services/common/clickhouse.ts';
import { encodeDefinitionRecord, signDefinitionRecord } from '../../services/common/definitionRecord.ts';
import { type DeadLetter } from '../../services/common/contracts/deadLetters.ts';
import { eventSchemas, schemaText } from '../../services/common/eventSchemas.ts';
import { parseDefinition } from '../../services/common/experimentDefinition.ts';
import { decodeExperimentStatus } from '../../services/common/experimentStatus.ts';
import { consumerGroup, valueSubject } from '../../services/common/topics.ts';
import { frame, unframe } from '../../services/common/wireFormat.ts';
import { verifyChain } from '../../services/common/auditChain.ts';
import { type AuditRecord } from '../../services/common/contracts/audit.ts';
import { signedCommand } from '../../services/common/commandSigning.ts';
import { encodeCommandRecord } from '../../services/common/contracts/controlCommands.ts';
import { runExpctl, spawnService, waitUntilCaughtUp, type ChildService } from '../support/childService.ts';
import { testPipeline } from '../support/pipeline.ts';
import { stackEndpoints } from '../support/stack.ts';
import { readTopic } from '../support/topicReader.ts';
import { waitFor } from '../support/waitFor.ts';


/**
 * The control plane owns experiment definitions and their lifecycle, on the real stack: the
 * control service, ingest, aggregate and the sink as their own processes. Every attack on
 * DEFINE and on exp.definitions, every illegal move, and what a conclusion does downstream.
 */
describe('experiment definitions and lifecycle through the control plane, under attack', () => {
  const pipeline = testPipeline('lifecycle', { principals: { alice: ['operator'], carol: ['analyst'], guardian: ['guardian'], 'admin-api': ['operator', 'experimenter'] }, tokens: ['alice', 'carol', 'experimenter'] });
  const { kafka, topics, fixture } = pipeline;
  const chdb = mkdtempSync(join(tmpdir(), 'lifecycle-chdb-'));
  const env = { ...pipeline.env, ADMIN_API_KEY_FILE: fixture.keyFile('admin-api'), ADMIN_API_PORT: '0', ADMIN_REFUSAL_AUDIT_WINDOW_MS: '2000', KAFKA_SESSION_TIMEOUT_MS: '6000', CHDB_PATH: chdb, PSEUDONYM_KEY: 'lifecycle-test-key-0123456789' };
  const children: Record<string, ChildService> = {};
  // The services live through every test of the file, so they are started in beforeAll (the
  // process registry stops what a test itself started after that test), stopped in afterAll.
  beforeAll(async () => {
    children.control = spawnService('services/control/main.ts', env);
    children.ingest = spawnService('services/ingest/main.ts', env);
    children.aggregate = spawnService('services/aggregate/main.ts', env);
    children.sink = spawnService('services/sink/main.ts', env);
    await Promise.all(Object.values(children).map((c) => c.started));
  }, 120_000);
  afterAll(async () => {
    for (const c of Object.values(children)) c.process.kill('SIGTERM');
    await Promise.all(Object.values(children).map((c) => c.exited));
  });

  const context = { kafka, registry: pipeline.registry, topics, logger: pipeline.logger };
  const experimenter = fixture.signer('experimenter');
  const decode = <T>(type: 'audit' | 'anomaly' | 'deadLetter' | 'aggregateDelta') => ({ message }: { message: { value: Buffer | null } }) => eventSchemas()[type].fromBuffer((unframe(message.value) as { body: Buffer }).body) as T;
  // The control service writes each decision's audit record, state and definition with its
  // offset on exp.control, in one transaction: once it has caught up, those topics are complete.
  const decided = () => waitUntilCaughtUp(kafka, consumerGroup(pipeline.prefix, 'control'), [topics.control]);
  const auditLog = async () => (await decided(), await readTopic(kafka, topics.audit)).map(decode<AuditRecord>('audit'));
  const states = async () => (await decided(), await readTopic(kafka, topics.state)).map(({ message }) => decodeExperimentStatus(message.value!)!);
  const definitionRecords = async () => (await decided(), await readTopic(kafka, topics.definitions)).map(({ message }) => ({ key: message.key?.toString(), value: message.value }));
  const code = (reason: string) => reason.slice(0, reason.indexOf(':'));
  const main = (changes: Record<string, unknown> = {}) => parseDefinition({
    id: 'lc-main', name: 'Lifecycle', hypothesis: 'h', owner: 'test',
    variants: [{ id: 'control', weight: 0.5 }, { id: 'treatment', weight: 0.5 }],
    primaryMetrics: [{ name: 'revenue', type: 'sum' }],
    guardrailMetrics: [{ name: 'latency', type: 'sum', harmfulDirection: 'increase', tolerance: { kind: 'relative', value: 0.05 } }],
    plannedSampleSize: 1_000, ...changes,
  }, 'test');
  const ingestGroup = consumerGroup(pipeline.prefix, 'ingest');
  const settled = async () => {
    await waitUntilCaughtUp(kafka, ingestGroup, [topics.exposuresRaw, topics.metricsRaw]);
    await waitUntilCaughtUp(kafka, consumerGroup(pipeline.prefix, 'aggregate'), [topics.events]);
  };
  const totals = async (experimentId: string) => {
    const deltas = (await readTopic(kafka, topics.aggregates)).map(decode<ExperimentDelta>('aggregateDelta')).filter((d) => d.experimentId === experimentId);
    const users: Record<string, number> = {};
    let revenue = 0;
    for (const v of deltas.flatMap((d) => d.variants)) {
      users[v.variantId] = (users[v.variantId] ?? 0) + v.exposedUsers;
      revenue += v.metrics.filter((m) => m.metric === 'revenue').reduce((n, m) => n + m.sum, 0);
    }
    return { users, revenue };
  };
  // A move is in force in a service once it logs it (see experimentStatusTable).
  const inForce = async (experimentId: string, status: string, services = ['ingest', 'aggregate']) => {
    const line = new RegExp(`"experimentId":"${experimentId}","status":"${status}".*"msg":"experiment\\.state: in force"`);
    await Promise.all(services.map((s) => children[s]!.waitForLog(line)));
  };
  const deadLetters = async () => (await readTopic(kafka, topics.dlq)).map(decode<DeadLetter>('deadLetter'));

  it('refuses every forged, unauthorized, replayed, stale or invalid DEFINE, publishes only the valid one, and audits all of them', async () => {
    const schemaId = await pipeline.registry.register(valueSubject(topics.control), schemaText(eventSchemas().controlCommand));
    const define = (issuer: string, signer = issuer, at = Date.now(), definition: unknown = main()) => signedCommand({ experimentId: 'lc-main', action: 'DEFINE', reason: 'attack', payload: JSON.stringify(definition) }, issuer, fixture.privateKey(signer), at);
    const valid = define('experimenter');
    const widened = main({ guardrailMetrics: [{ name: 'latency', type: 'sum', harmfulDirection: 'increase', tolerance: { kind: 'relative', value: 5 } }] });
    const attempts: [string, object][] = [
      ['unsigned', { ...define('experimenter'), signature: '' }],
      ['forged (experimenter claimed, mallory signed)', define('experimenter', 'mallory')],
      ['tampered (tolerance widened after signing)', { ...define('experimenter'), payload: JSON.stringify(widened) }],
      ['wrong role: analyst', define('carol')],
      ['wrong role: operator', define('alice')],
      ['wrong role: guardian', define('guardian')],
      ['unknown principal', define('mallory')],
      ['stale', define('experimenter', 'experimenter', Date.now() - 10 * 60_000)],
      ['from the future', define('experimenter', 'experimenter', Date.now() + 10 * 60_000)],
      ['invalid definition', define('experimenter', 'experimenter', Date.now(), { ...main(), variants: [{ id: 'control', weight: 0.7 }, { id: 'treatment', weight: 0.7 }] })],
      ['valid experimenter DEFINE', valid],
      ['replay of the valid DEFINE', valid],
    ];
    const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    for (const [, command] of attempts) await producer.send({ topic: topics.control, acks: -1, messages: [{ key: 'lc-main', value: encodeCommandRecord(command as never, schemaId) }] });
    await producer.disconnect();

    const records = await auditLog();
    expect(records.map((r, i) => [attempts[i]![0], r.decision, code(r.reason)])).toEqual([
      ['unsigned', 'REJECTED', 'UNSIGNED'],
      ['forged (experimenter claimed, mallory signed)', 'REJECTED', 'BAD_SIGNATURE'],
      ['tampered (tolerance widened after signing)', 'REJECTED', 'BAD_SIGNATURE'],
      ['wrong role: analyst', 'REJECTED', 'WRONG_ROLE'],
      ['wrong role: operator', 'REJECTED', 'WRONG_ROLE'],
      ['wrong role: guardian', 'REJECTED', 'WRONG_ROLE'],
      ['unknown principal', 'REJECTED', 'UNKNOWN_PRINCIPAL'],
      ['stale', 'REJECTED', 'STALE'],
      ['from the future', 'REJECTED', 'FROM_THE_FUTURE'],
      ['invalid definition', 'REJECTED', 'INVALID_DEFINITION'],
      ['valid experimenter DEFINE', 'ACCEPTED', 'DEFINE'],
      ['replay of the valid DEFINE', 'REJECTED', 'REPLAYED'],
    ]);
    expect(records[10]!.reason).toMatch(/^DEFINE: version 1 \(new experiment, DRAFT\)/);
    expect(verifyChain(records)).toEqual({ ok: true, records: attempts.length });
    // Only the valid one was published, by the control service, as version 1, a draft.
    const published = await definitionRecords();
    expect(published).toHaveLength(1);
    expect(published[0]!.key).toBe('lc-main');
    expect(await states()).toMatchObject([{ experimentId: 'lc-main', status: 'DRAFT', by: 'experimenter', definitionVersion: 1, auditSequence: 11 }]);
  }, 180_000);

  it('moves only along the transition table, refuses changes that would invalidate a running experiment, and versions a tolerance change', async () => {
    const alice = fixture.signer('alice');
    const moves = [
      ['draft → halted', await moveExperiment(context, alice, 'lc-main', 'HALT', 'halt a draft')],
      ['draft → resumed', await moveExperiment(context, alice, 'lc-main', 'RESUME', 'resume a draft')],
      ['draft → concluded', await moveExperiment(context, experimenter, 'lc-main', 'CONCLUDE', 'conclude a draft', 'no-ship')],
      ['start by an operator', await moveExperiment(context, alice, 'lc-main', 'START', 'operators do not start')],
      ['draft → running', await moveExperiment(context, experimenter, 'lc-main', 'START', 'launch')],
      ['running → running', await moveExperiment(context, experimenter, 'lc-main', 'START', 'launch again')],
      ['running → archived', await moveExperiment(context, experimenter, 'lc-main', 'ARCHIVE', 'archive a running experiment')],
    ] as const;
    expect(moves.map(([name, o]) => [name, o.decision, code(o.reason)])).toEqual([
      ['draft → halted', 'REJECTED', 'ILLEGAL_TRANSITION'],
      ['draft → resumed', 'REJECTED', 'NOT_HALTED'],
      ['draft → concluded', 'REJECTED', 'ILLEGAL_TRANSITION'],
      ['start by an operator', 'REJECTED', 'WRONG_ROLE'],
      ['draft → running', 'ACCEPTED', 'START'],
      ['running → running', 'REJECTED', 'ILLEGAL_TRANSITION'],
      ['running → archived', 'REJECTED', 'ILLEGAL_TRANSITION'],
    ]);
    await inForce('lc-main', 'RUNNING');
    expect(moves[0]![1].reason).toBe('ILLEGAL_TRANSITION: lc-main is DRAFT: HALT is not a move from DRAFT (allowed: DEFINE, START, ARCHIVE)');

    const changes = [
      ['weights', main({ variants: [{ id: 'control', weight: 0.6 }, { id: 'treatment', weight: 0.4 }] })],
      ['a variant added', main({ variants: [{ id: 'control', weight: 0.5 }, { id: 'treatment', weight: 0.25 }, { id: 'other', weight: 0.25 }] })],
      ['a metric type', main({ primaryMetrics: [{ name: 'revenue', type: 'conversion' }] })],
      ['a metric added', main({ primaryMetrics: [{ name: 'revenue', type: 'sum' }, { name: 'orders', type: 'conversion' }] })],
      ['the attribution window', main({ attributionWindowHours: 1 })],
      ['a tolerance', main({ guardrailMetrics: [{ name: 'latency', type: 'sum', harmfulDirection: 'increase', tolerance: { kind: 'relative', value: 0.1 } }] })],
    ] as const;
    const outcomes: CommandOutcome[] = [];
    for (const [name, d] of changes) outcomes.push(...(await applyDefinitions(context, experimenter, [d], `change: ${name}`)));
    expect(outcomes.map((o, i) => [changes[i]![0], o.decision, code(o.reason), o.version ?? null])).toEqual([
      ['weights', 'REJECTED', 'INVALIDATING_CHANGE', null],
      ['a variant added', 'REJECTED', 'INVALIDATING_CHANGE', null],
      ['a metric type', 'REJECTED', 'INVALIDATING_CHANGE', null],
      ['a metric added', 'REJECTED', 'INVALIDATING_CHANGE', null],
      ['the attribution window', 'REJECTED', 'INVALIDATING_CHANGE', null],
      ['a tolerance', 'ACCEPTED', 'DEFINE', 2],
    ]);
    expect(outcomes[2]!.reason).toMatch(/^INVALIDATING_CHANGE: lc-main is RUNNING; changing primaryMetrics would invalidate the statistics it has collected/);
    expect(outcomes[5]!.reason).toMatch(/^DEFINE: version 2 \(changed guardrailMetrics\.latency\.tolerance\)/);
    const published = await definitionRecords();
    expect(published).toHaveLength(2);
  }, 180_000);

  it('services ignore, count and surface definition records the control service did not write, and keep what it published', async () => {
    const schemaId = await pipeline.registry.register(valueSubject(topics.definitions), schemaText(eventSchemas().definition));
    const genuineV1 = (await definitionRecords())[0]!.value!;
    const record = (over: Record<string, unknown>) => ({ experimentId: 'lc-main', version: 99, appliedAt: Date.now(), definition: JSON.stringify(main()), commandId: 'forged', definedBy: 'experimenter', auditSequence: 1, publisher: 'control', ...over });
    const withEvil = JSON.stringify(main({ variants: [{ id: 'control', weight: 0.5 }, { id: 'evil', weight: 0.5 }] }));
    const foreign: [string, Buffer | null, string, string?][] = [
      ['an unsigned new experiment', encodeDefinitionRecord({ ...record({ experimentId: 'lc-forged', version: 1, definition: JSON.stringify({ ...main(), id: 'lc-forged' }), publisher: null }), signature: null } as never, schemaId), 'UNSIGNED', 'lc-forged'],
      ['mallory signing as control (a variant swapped)', encodeDefinitionRecord(signDefinitionRecord(record({ definition: withEvil }) as never, fixture.privateKey('mallory')), schemaId), 'BAD_SIGNATURE'],
      ['the experimenter signing as itself', encodeDefinitionRecord(signDefinitionRecord(record({ definition: withEvil, publisher: 'experimenter' }) as never, fixture.privateKey('experimenter')), schemaId), 'NOT_CONTROL'],
      ['a replay of the genuine version 1 (tolerance rolled back)', genuineV1, 'STALE_VERSION'],
      ['a tombstone', null, 'TOMBSTONE'],
    ];
    const producer = kafka.producer();
    await producer.connect();
    for (const [, value, , key] of foreign) await producer.send({ topic: topics.definitions, acks: -1, messages: [{ key: key ?? 'lc-main', value }] });
    await producer.disconnect();

    // Surfaced: one FOREIGN_DEFINITION anomaly per record, with why.
    const readAnomalies = async () => (await readTopic(kafka, topics.anomalies)).map(decode<{ type: string; experimentId: string; severity: string; evidence: string }>('anomaly'));
    let anomalies = await readAnomalies();
    await waitFor(async () => (anomalies = await readAnomalies()).length >= foreign.length, { timeoutMs: 60_000, message: () => `${anomalies.length} of ${foreign.length} FOREIGN_DEFINITION anomalies` });
    expect(anomalies.map((a) => [a.type, a.severity, (JSON.parse(a.evidence) as { rejection: string }).rejection])).toEqual(foreign.map(([, , rejection]) => ['FOREIGN_DEFINITION', 'critical', rejection]));
    expect(anomalies[0]!.experimentId).toBe('lc-forged');

    // Ignored: exposures to the forged experiment and to the swapped-in variant are dead letters;
    // the real variants of the version the control service published still count.
    // Once every service has read (and refused) all five records.
    const rejections = (service: string) => children[service]!.log().match(/definitions\.rejected|a definition record the control service did not publish/g)?.length ?? 0;
    await waitFor(() => ['ingest', 'aggregate', 'sink'].every((service) => rejections(service) >= foreign.length), { timeoutMs: 60_000, message: () => `rejections logged: ${['ingest', 'aggregate', 'sink'].map((s) => `${s} ${rejections(s)}`).join(', ')}` });
    const events = await pipeline.producer();
    const now = Date.now();
    const sends: Promise<void>[] = [];
    for (let u = 0; u < 30; u++) {
      sends.push(events.sendExposure({ eventId: `before-${u}`, experimentId: 'lc-main', variantId: u % 2 ? 'treatment' : 'control', userId: `user-${u}`, eventTime: now, context: null }));
    }
    sends.push(events.sendExposure({ eventId: 'forged-1', experimentId: 'lc-forged', variantId: 'control', userId: 'user-forged', eventTime: now, context: null }));
    sends.push(events.sendExposure({ eventId: 'evil-1', experimentId: 'lc-main', variantId: 'evil', userId: 'user-evil', eventTime: now, context: null }));
    await Promise.all(sends);
    await settled();
    await Promise.all(Array.from({ length: 30 }, (_, u) => events.sendMetric({ eventId: `rev-${u}`, userId: `user-${u}`, metric: 'revenue', value: 10, eventTime: now + 1_000 })));
    await settled();
    const letters = (await deadLetters()).sort((a, b) => a.reason.localeCompare(b.reason));
    expect(letters.map((d) => d.reason)).toEqual(['UNKNOWN_EXPERIMENT', 'UNKNOWN_VARIANT']);
    expect(letters[0]!.message).toMatch(/^experiment "lc-forged" has no definition/);
    expect(letters[1]!.message).toMatch(/^experiment "lc-main" has no variant "evil"; its variants are control, treatment/);
    expect(await totals('lc-main')).toEqual({ users: { control: 15, treatment: 15 }, revenue: 300 });

    // Counted, by reason, in every reader: the admin API's /metrics shows the control process's counters.
    const api = /"url":"(http:\/\/[^"]+)","msg":"admin API listening"/.exec(children.control!.log())![1]!;
    const metrics = await (await fetch(`${api}/metrics`, { headers: { authorization: `Bearer ${fixture.tokens.carol}` } })).text();
    for (const reason of ['UNSIGNED', 'BAD_SIGNATURE', 'NOT_CONTROL', 'STALE_VERSION', 'TOMBSTONE']) {
      expect(metrics).toMatch(new RegExp(`definitions_rejected_total\\{[^}]*reason="${reason}"[^}]*\\} 1`));
      expect(metrics).toMatch(new RegExp(`control_foreign_definitions_total\\{[^}]*reason="${reason}"[^}]*\\} 1`));
    }
    for (const service of ['ingest', 'aggregate', 'sink']) expect(children[service]!.log().match(/definitions\.rejected|a definition record the control service did not publish/g)?.length ?? 0, service).toBeGreaterThanOrEqual(5);
    // The version in force is still the control service's version 2.
    const listed = (await (await fetch(`${api}/experiments`, { headers: { authorization: `Bearer ${fixture.tokens.carol}` } })).json()) as { experiments: { experimentId: string; definitionVersion: number; status: string }[] };
    expect(listed.experiments).toEqual([expect.objectContaining({ experimentId: 'lc-main', definitionVersion: 2, status: 'RUNNING' })]);
  }, 240_000);

  it('a concluded experiment enrolls no one and counts nothing after its conclusion; illegal moves after it are refused', async () => {
    const before = await totals('lc-main');
    const concluded = await moveExperiment(context, experimenter, 'lc-main', 'CONCLUDE', 'treatment wins', 'ship:treatment');
    expect([concluded.decision, code(concluded.reason)]).toEqual(['ACCEPTED', 'CONCLUDE']);
    await inForce('lc-main', 'CONCLUDED');

    const events = await pipeline.producer();
    const now = Date.now();
    await Promise.all(Array.from({ length: 10 }, (_, u) => events.sendExposure({ eventId: `after-${u}`, experimentId: 'lc-main', variantId: 'treatment', userId: `late-user-${u}`, eventTime: now, context: null })));
    await settled();
    // Already enrolled users' events after the conclusion do not count either.
    await Promise.all(Array.from({ length: 30 }, (_, u) => events.sendMetric({ eventId: `rev-after-${u}`, userId: `user-${u}`, metric: 'revenue', value: 1_000, eventTime: now + 1_000 })));
    await events.close();
    await settled();
    expect((await deadLetters()).filter((d) => d.reason === 'EXPERIMENT_CONCLUDED')).toHaveLength(10);
    expect(await totals('lc-main')).toEqual(before);

    const after = [
      ['concluded → running', await moveExperiment(context, experimenter, 'lc-main', 'START', 'again')],
      ['concluded → resumed', await moveExperiment(context, fixture.signer('alice'), 'lc-main', 'RESUME', 'again')],
      ['concluded → halted', await moveExperiment(context, fixture.signer('alice'), 'lc-main', 'HALT', 'again')],
      ['a concluded definition changed', (await applyDefinitions(context, experimenter, [main({ srmThreshold: 0.01 })], 'again'))[0]!],
      ['concluded → archived', await moveExperiment(context, experimenter, 'lc-main', 'ARCHIVE', 'shipped')],
      ['archived → running', await moveExperiment(context, experimenter, 'lc-main', 'START', 'revive')],
      ['archived → concluded', await moveExperiment(context, experimenter, 'lc-main', 'CONCLUDE', 'twice', 'no-ship')],
    ] as const;
    expect(after.map(([name, o]) => [name, o.decision, code(o.reason)])).toEqual([
      ['concluded → running', 'REJECTED', 'ILLEGAL_TRANSITION'],
      ['concluded → resumed', 'REJECTED', 'NOT_HALTED'],
      ['concluded → halted', 'REJECTED', 'ILLEGAL_TRANSITION'],
      ['a concluded definition changed', 'REJECTED', 'ILLEGAL_TRANSITION'],
      ['concluded → archived', 'ACCEPTED', 'ARCHIVE'],
      ['archived → running', 'REJECTED', 'ILLEGAL_TRANSITION'],
      ['archived → concluded', 'REJECTED', 'ILLEGAL_TRANSITION'],
    ]);
    const moves = (await states()).filter((s) => s.experimentId === 'lc-main').map((s) => s.status);
    expect(moves).toEqual(['DRAFT', 'RUNNING', 'CONCLUDED', 'ARCHIVED']);
  }, 240_000);

  it('the admin API offers the same operations to tokens with the experimenter role, and only to them', async () => {
    const api = /"url":"(http:\/\/[^"]+)","msg":"admin API listening"/.exec(children.control!.log())![1]!;
    const call = async (method: string, path: string, token: string, body: unknown) => {
      const response = await fetch(api + path, { method, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
      return { status: response.status, body: (await response.json()) as Record<string, unknown> };
    };
    const definition = { ...main(), id: 'lc-api' };
    const { carol, alice, experimenter: token } = fixture.tokens as Record<string, string>;
    expect((await call('PUT', '/experiments/lc-api/definition', carol!, { reason: 'analyst tries', definition })).status).toBe(403);
    expect((await call('PUT', '/experiments/lc-api/definition', alice!, { reason: 'operator tries', definition })).status).toBe(403);
    expect((await call('PUT', '/experiments/lc-api/definition', token!, { reason: 'bad', definition: { ...definition, variants: [] } })).body).toMatchObject({ decision: 'REJECTED' });
    // A definition too large for a DEFINE command's payload (64 KiB) is refused before it is sent; a larger body gets 413.
    const oversized = await call('PUT', '/experiments/lc-api/definition', token!, { reason: 'too large', definition: { ...definition, hypothesis: 'h'.repeat(70_000) } });
    expect([oversized.status, oversized.body.message]).toEqual([400, `definition: at most ${64 * 1024} characters as JSON (got ${JSON.stringify({ ...definition, hypothesis: 'h'.repeat(70_000) }).length})`]);
    expect((await call('PUT', '/experiments/lc-api/definition', token!, { reason: 'far too large', definition: { ...definition, hypothesis: 'h'.repeat(100_000) } })).status).toBe(413);
    const defined = await call('PUT', '/experiments/lc-api/definition', token!, { reason: 'via the API', definition });
    expect(defined.status, JSON.stringify(defined.body)).toBe(200);
    expect(defined.body).toMatchObject({ decision: 'ACCEPTED', definitionVersion: 1, status: { status: 'DRAFT', by: 'admin-api' } });
    expect((await call('POST', '/experiments/lc-api/start', alice!, { reason: 'operator tries' })).status).toBe(403);
    expect((await call('POST', '/experiments/lc-api/start', token!, { reason: 'go live' })).body).toMatchObject({ decision: 'ACCEPTED', status: { status: 'RUNNING' } });
    expect((await call('POST', '/experiments/lc-api/conclude', token!, { reason: 'no decision' })).status).toBe(400);
    const concluded = await call('POST', '/experiments/lc-api/conclude', token!, { reason: 'flat', decision: 'inconclusive' });
    expect(concluded.body).toMatchObject({ decision: 'ACCEPTED', status: { status: 'CONCLUDED', decision: 'inconclusive' } });
    expect((await call('POST', '/experiments/lc-api/start', token!, { reason: 'again' })).status).toBe(409);
    // Refused calls are audited per caller and window (RefusalAudit): carol's and alice's first
    // refusal at once, alice's second in a summary when her window (2 s here) ends.
    const refusalRecords = async () => (await auditLog()).filter((r) => r.experimentId === 'lc-api' && r.sourceTopic === 'admin-api');
    let refusals = await refusalRecords();
    for (const deadline = Date.now() + 30_000; refusals.length < 3 && Date.now() < deadline; ) refusals = await refusalRecords();
    expect(refusals.map((r) => [code(r.reason), r.action])).toEqual([['API_FORBIDDEN', 'DEFINE'], ['API_FORBIDDEN', 'DEFINE'], ['API_FORBIDDEN', 'START']]);
    expect(refusals[0]!.reason).toMatch(/^API_FORBIDDEN: DEFINE refused \(403\) for carol from /);
    expect(refusals[1]!.reason).toMatch(/^API_FORBIDDEN: DEFINE refused \(403\) for alice from /);
    expect(refusals[2]!.reason).toMatch(/^API_FORBIDDEN: 1 more refusal\(s\) \(403\) for alice from \S+ between .*: START ×1; on lc-api ×1$/);
  }, 120_000);

  it('lands every published version, every move and every conclusion in ClickHouse, and the audit chain verifies', async () => {
    await waitUntilCaughtUp(kafka, consumerGroup(pipeline.prefix, 'sink'), [topics.definitions, topics.state, topics.anomalies, topics.audit, topics.control]);
    const verify = await runExpctl(['audit', 'verify'], { env: { ...process.env, ...env, LOG_LEVEL: 'warn' } });
    expect(verify.stdout, verify.stderr).toMatch(/^audit chain intact: \d+ record\(s\)/);
    children.sink!.process.kill('SIGTERM');
    await children.sink!.exited;
    if (stackEndpoints().clickhouseUrl) return; // the sink wrote to its own chDB directory
    const ch = await openClickHouse({ username: 'default', password: '', database: 'expstream', dataDir: chdb });
    try {
      const rows = async (sql: string) => (await (await ch.client.query({ query: sql, format: 'JSONEachRow' })).json<Record<string, unknown>>());
      expect(await rows('SELECT experiment_id, version, defined_by, publisher, JSONExtractString(definition, \'id\') AS id FROM experiment_definitions FINAL ORDER BY experiment_id, version')).toEqual([
        { experiment_id: 'lc-api', version: 1, defined_by: 'admin-api', publisher: 'control', id: 'lc-api' },
        { experiment_id: 'lc-main', version: 1, defined_by: 'experimenter', publisher: 'control', id: 'lc-main' },
        { experiment_id: 'lc-main', version: 2, defined_by: 'experimenter', publisher: 'control', id: 'lc-main' },
      ]);
      expect(await rows("SELECT JSONExtractFloat(definition, 'guardrailMetrics', 1, 'tolerance', 'value') AS tolerance FROM experiment_definitions FINAL WHERE experiment_id = 'lc-main' ORDER BY version")).toEqual([{ tolerance: 0.05 }, { tolerance: 0.1 }]);
      expect(await rows('SELECT experiment_id, definition_version, decision, concluded_by, concluded_at > started_at AS after_start FROM experiment_conclusions FINAL ORDER BY experiment_id')).toEqual([
        { experiment_id: 'lc-api', definition_version: 1, decision: 'inconclusive', concluded_by: 'admin-api', after_start: 1 },
        { experiment_id: 'lc-main', definition_version: 2, decision: 'ship:treatment', concluded_by: 'experimenter', after_start: 1 },
      ]);
      expect(await rows("SELECT groupArray(status) AS moves FROM (SELECT status FROM experiment_status_log WHERE experiment_id = 'lc-main' ORDER BY kafka_offset)")).toEqual([{ moves: ['DRAFT', 'RUNNING', 'CONCLUDED', 'ARCHIVED'] }]);
      expect(await rows("SELECT variant_id, users FROM concluded_results WHERE experiment_id = 'lc-main' AND metric = 'revenue' ORDER BY variant_id")).toEqual([{ variant_id: 'control', users: '15' }, { variant_id: 'treatment', users: '15' }]);
      expect(await rows("SELECT count() AS n FROM anomalies WHERE type = 'FOREIGN_DEFINITION'")).toEqual([{ n: '5' }]);
      // A refused DEFINE keeps what it tried to publish: the invalid definition of the first attack.
      expect(await rows(`SELECT count() AS n FROM control_commands WHERE action = 'DEFINE' AND payload LIKE '%"weight":0.7%'`)).toEqual([{ n: '1' }]);
    } finally {
      await ch.close();
    }
  }, 180_000);
});
