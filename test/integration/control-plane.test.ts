import { waitUntilCaughtUp } from '../support/groupProgress.ts';
import { consumerGroup } from '../../services/common/topics.ts';
import { afterAll, describe, expect, it } from 'vitest';
import { eventSchemas, schemaText } from '../../services/common/eventSchemas.ts';
import { decodeExperimentStatus } from '../../services/common/experimentStatus.ts';
import { valueSubject } from '../../services/common/topics.ts';
import { frame, unframe } from '../../services/common/wireFormat.ts';
import { verifyChain } from '../../services/common/auditChain.ts';
import { type AuditRecord } from '../../services/common/contracts/audit.ts';
import { signedCommand } from '../../services/common/commandSigning.ts';
import { encodeCommandRecord } from '../../services/common/contracts/controlCommands.ts';
import { API_REFUSAL_HEADER } from '../../services/control/decideCommand.ts';
import { runExpctl, spawnService, type ChildService } from '../support/childService.ts';
import { minimalDefinition, testPipeline } from '../support/pipeline.ts';
import { readTopic } from '../support/topicReader.ts';


describe('the control plane under attack', () => {
  const pipeline = testPipeline('control', { principals: { guardian: ['guardian'], alice: ['operator'], bob: ['experimenter'], carol: ['analyst'], 'admin-api': ['operator'] }, tokens: ['alice', 'carol'] });
  const fixture = pipeline.fixture;
  // A small in-memory audit window (5 records), so GET /audit pages come from exp.audit; a short refusal window.
  const env = { ...pipeline.env, ADMIN_API_KEY_FILE: fixture.keyFile('admin-api'), ADMIN_API_PORT: '0', ADMIN_AUTH_FAILURES_ALLOWED: '4', ADMIN_AUDIT_KEPT: '5', ADMIN_REFUSAL_AUDIT_WINDOW_MS: '4000', KAFKA_SESSION_TIMEOUT_MS: '6000' };
  const children: ChildService[] = [];
  afterAll(async () => {
    for (const c of children) c.process.kill('SIGTERM');
    await Promise.all(children.map((c) => c.exited));
  });

  // The control service writes each decision's audit record and state with its offset on
  // exp.control, in one transaction: once it has caught up, both topics are complete.
  const decided = () => waitUntilCaughtUp(pipeline.kafka, consumerGroup(pipeline.prefix, 'control'), [pipeline.topics.control]);
  const audit = async () => {
    await decided();
    return (await readTopic(pipeline.kafka, pipeline.topics.audit)).map(({ message }) => eventSchemas().audit.fromBuffer((unframe(message.value) as { body: Buffer }).body) as AuditRecord);
  };
  const states = async () => {
    await decided();
    return (await readTopic(pipeline.kafka, pipeline.topics.state)).map(({ message }) => decodeExperimentStatus(message.value!)!);
  };

  it('applies only valid commands, audits every attempt in an intact chain, and serves the admin API with tokens and roles', async () => {
    const control = spawnService('services/control/main.ts', env);
    children.push(control);
    await control.started;
    // Defined and started by the experimenter's signed commands: four audit records first.
    await pipeline.defineThroughControl([minimalDefinition('exp-a', ['control', 'treatment']), minimalDefinition('exp-b', ['control', 'treatment'])]);
    const SETUP = 4;
    const api = /"url":"(http:\/\/[^"]+)","msg":"admin API listening"/.exec(control.log())![1]!;

    // --- attacks straight on the control topic ---
    const schemaId = await pipeline.registry.register(valueSubject(pipeline.topics.control), schemaText(eventSchemas().controlCommand));
    const encode = (command: object) => frame(schemaId, eventSchemas().controlCommand.toBuffer(command));
    const halt = (experimentId: string, issuer: string, signer = issuer, at = Date.now()) => signedCommand({ experimentId, action: 'HALT', reason: 'test' }, issuer, fixture.privateKey(signer), at);
    const valid = encode(halt('exp-a', 'guardian'));
    const tampered = { ...halt('exp-a', 'alice'), reason: 'changed after signing' };
    const refusalForgery = halt('exp-b', 'alice');
    const attempts: [string, Buffer, Record<string, string>?][] = [
      ['garbage bytes', Buffer.from('HALT exp-a please')],
      ['framed garbage', frame(schemaId, Buffer.from([0xff, 0xff, 0xff]))],
      ['unsigned', encode({ ...halt('exp-a', 'alice'), signature: '' })],
      ['forged (alice claimed, mallory signed)', encode(halt('exp-a', 'alice', 'mallory'))],
      ['tampered', encode(tampered)],
      ['unknown principal', encode(halt('exp-a', 'mallory'))],
      ['wrong role (analyst halts)', encode(halt('exp-a', 'carol'))],
      ['wrong role (experimenter resumes)', encode({ ...signedCommand({ experimentId: 'exp-a', action: 'RESUME', reason: 'test' }, 'bob', fixture.privateKey('bob')) })],
      ['stale', encode(halt('exp-a', 'alice', 'alice', Date.now() - 10 * 60_000))],
      ['from the future', encode(halt('exp-a', 'alice', 'alice', Date.now() + 10 * 60_000))],
      ['refusal note not from the API', encode(refusalForgery), { [API_REFUSAL_HEADER]: 'FORBIDDEN' }],
      ['valid guardian halt', valid],
      ['replay of the valid halt', valid],
      ['resume of a running experiment', encode(signedCommand({ experimentId: 'exp-b', action: 'RESUME', reason: 'test' }, 'alice', fixture.privateKey('alice')))],
      ['a valid operator halt with a 900 KB reason', encode(signedCommand({ experimentId: 'exp-b', action: 'HALT', reason: 'r'.repeat(900_000) }, 'alice', fixture.privateKey('alice')))],
    ];
    const producer = pipeline.kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    for (const [, value, headers] of attempts) await producer.send({ topic: pipeline.topics.control, acks: -1, messages: [{ key: 'attack', value, ...(headers ? { headers } : {}) }] });
    await producer.disconnect();

    const records = await audit();
    expect(records).toHaveLength(SETUP + attempts.length);
    expect(records.slice(0, SETUP).map((r) => [r.action, r.decision])).toEqual([['DEFINE', 'ACCEPTED'], ['DEFINE', 'ACCEPTED'], ['START', 'ACCEPTED'], ['START', 'ACCEPTED']]);
    const outcome = records.slice(SETUP).map((r, i) => [attempts[i]![0], r.decision, r.reason.slice(0, r.reason.indexOf(':'))]);
    expect(outcome).toEqual([
      ['garbage bytes', 'REJECTED', 'MALFORMED'],
      ['framed garbage', 'REJECTED', 'MALFORMED'],
      ['unsigned', 'REJECTED', 'UNSIGNED'],
      ['forged (alice claimed, mallory signed)', 'REJECTED', 'BAD_SIGNATURE'],
      ['tampered', 'REJECTED', 'BAD_SIGNATURE'],
      ['unknown principal', 'REJECTED', 'UNKNOWN_PRINCIPAL'],
      ['wrong role (analyst halts)', 'REJECTED', 'WRONG_ROLE'],
      ['wrong role (experimenter resumes)', 'REJECTED', 'WRONG_ROLE'],
      ['stale', 'REJECTED', 'STALE'],
      ['from the future', 'REJECTED', 'FROM_THE_FUTURE'],
      ['refusal note not from the API', 'REJECTED', 'MALFORMED'],
      ['valid guardian halt', 'ACCEPTED', 'HALT'],
      ['replay of the valid halt', 'REJECTED', 'REPLAYED'],
      ['resume of a running experiment', 'REJECTED', 'NOT_HALTED'],
      ['a valid operator halt with a 900 KB reason', 'REJECTED', 'MALFORMED'],
    ]);
    // A command's strings are capped before anything quotes them: the audit record stays small.
    expect(records.at(-1)!.reason).toBe('MALFORMED: reason: at most 2000 characters (got 900000)');
    expect(verifyChain(records)).toEqual({ ok: true, records: SETUP + attempts.length });
    // Only the one valid command changed state (after the setup's DRAFT and RUNNING).
    const afterKafka = await states();
    expect(afterKafka.map((s) => [s.experimentId, s.status, s.by])).toEqual([['exp-a', 'DRAFT', 'experimenter'], ['exp-b', 'DRAFT', 'experimenter'], ['exp-a', 'RUNNING', 'experimenter'], ['exp-b', 'RUNNING', 'experimenter'], ['exp-a', 'HALTED', 'guardian']]);
    expect(afterKafka.at(-1)!.auditSequence).toBe(SETUP + 12);

    // --- the admin API ---
    const call = async (method: string, path: string, token?: string, body?: unknown) => {
      const response = await fetch(api + path, { method, headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body !== undefined ? { 'content-type': 'application/json' } : {}) }, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
      const text = await response.text();
      return { status: response.status, body: text.startsWith('{') ? (JSON.parse(text) as Record<string, unknown>) : text, headers: response.headers };
    };
    const alice = fixture.tokens.alice!;
    const carol = fixture.tokens.carol!;
    expect((await call('GET', '/healthz')).status).toBe(200);
    expect((await call('GET', '/readyz')).status).toBe(200);
    expect((await call('GET', '/experiments')).status).toBe(401);
    expect((await call('GET', '/experiments', 'not-a-token')).status).toBe(401);
    const listed = await call('GET', '/experiments', carol);
    expect(listed.status).toBe(200);
    expect((listed.body as { experiments: { experimentId: string; status: string }[] }).experiments.map((e) => [e.experimentId, e.status])).toEqual([['exp-a', 'HALTED'], ['exp-b', 'RUNNING']]);
    expect((await call('POST', '/experiments/exp-b/halt', carol, { reason: 'analyst tries' })).status).toBe(403);
    expect((await call('POST', '/experiments/exp-b/halt', undefined, { reason: 'anonymous tries' })).status).toBe(401);
    expect((await call('POST', '/experiments/exp-b/halt', alice, {})).status).toBe(400);
    expect((await call('POST', '/experiments/exp-b/halt', alice, { reason: 'ok', extra: 1 })).status).toBe(400);
    expect((await call('POST', '/experiments/no-such/halt', alice, { reason: 'unknown experiment' })).status).toBe(404);
    expect((await call('POST', '/experiments/bad%20id/halt', alice, { reason: 'bad id' })).status).toBe(400);
    const halted = await call('POST', '/experiments/exp-b/halt', alice, { reason: 'latency alarm from on-call' });
    expect(halted.status, JSON.stringify(halted.body)).toBe(200);
    expect(halted.body).toMatchObject({ decision: 'ACCEPTED', status: { experimentId: 'exp-b', status: 'HALTED', by: 'admin-api' } });
    expect((halted.body as { status: { reason: string } }).status.reason).toMatch(/requested by alice via the admin API/);
    const resumed = await call('POST', '/experiments/exp-b/resume', alice, { reason: 'false alarm' });
    expect(resumed.body).toMatchObject({ decision: 'ACCEPTED', status: { status: 'RUNNING' } });
    const again = await call('POST', '/experiments/exp-b/resume', alice, { reason: 'twice' });
    expect(again.status).toBe(409);
    expect(again.body).toMatchObject({ decision: 'REJECTED' });

    const results = await call('GET', '/experiments/exp-a/results', carol);
    expect(results.status).toBe(200);
    expect(results.body).toMatchObject({ experimentId: 'exp-a', status: 'HALTED', control: 'control', variants: [{ variantId: 'control' }, { variantId: 'treatment' }] });
    const auditApi = await call('GET', '/audit?limit=5', carol);
    expect(auditApi.status).toBe(200);
    const recent = (auditApi.body as { records: AuditRecord[] }).records;
    expect(recent.map((r) => r.reason.slice(0, r.reason.indexOf(':')))).toEqual(['API_FORBIDDEN', 'API_UNAUTHENTICATED', 'HALT', 'RESUME', 'NOT_HALTED']);
    expect(recent.slice(0, 2).every((r) => r.sourceTopic === 'admin-api' && r.decision === 'REJECTED')).toBe(true);
    expect((await call('GET', '/audit?limit=0', carol)).status).toBe(400);
    expect((await call('GET', '/audit', alice)).status).toBe(200);
    const metrics = await call('GET', '/metrics', carol);
    expect(metrics.body).toMatch(/control_decisions_total\{[^}]*decision="REJECTED"[^}]*reason="BAD_SIGNATURE"[^}]*\} 2/);
    expect(metrics.body).toMatch(/admin_api_auth_failures_total\{[^}]*reason="UNAUTHENTICATED"[^}]*\} 3/);

    // Failed authentications slow the address down: after the 4th in a minute, wrong tokens get 429 ...
    expect((await call('GET', '/experiments', 'guess-1')).status).toBe(401);
    for (const guess of ['guess-2', 'guess-3']) {
      const throttled = await call('GET', '/experiments', guess);
      expect(throttled.status).toBe(429);
      expect(Number(throttled.headers.get('retry-after'))).toBeGreaterThan(0);
    }
    expect((await call('GET', '/experiments')).status).toBe(429);
    // ... but a valid token from the same address is served: the stop button cannot be locked out.
    expect((await call('GET', '/experiments', carol)).status).toBe(200);
    const stopped = await call('POST', '/experiments/exp-b/halt', alice, { reason: 'halt from behind the same NAT as the guesser' });
    expect(stopped.status, JSON.stringify(stopped.body)).toBe(200);
    expect(stopped.body).toMatchObject({ decision: 'ACCEPTED', status: { experimentId: 'exp-b', status: 'HALTED' } });
    const restarted1 = await call('POST', '/experiments/exp-b/resume', alice, { reason: 'resumed from the same address' });
    expect(restarted1.body).toMatchObject({ decision: 'ACCEPTED', status: { status: 'RUNNING' } });
    // A wrong role is not a failed authentication: 403, and it does not count towards the throttle.
    expect((await call('POST', '/experiments/exp-b/halt', carol, { reason: 'analyst tries' })).status).toBe(403);

    // Refused halts are audited without flooding the chain: 30 more from the analyst and 30 with
    // wrong tokens (429 now) become one record at once and one summary with the count per caller.
    for (let i = 0; i < 30; i++) {
      expect((await call('POST', '/experiments/exp-b/halt', carol, { reason: `analyst flood ${i}` })).status).toBe(403);
      expect((await call('POST', '/experiments/exp-b/halt', `guess-${i}`, { reason: `guesser flood ${i}` })).status).toBe(429);
    }
    const refusalsOf = (records: AuditRecord[], code: string) => records.filter((r) => r.reason.startsWith(`${code}: `));
    const counted = (records: AuditRecord[]) => records.reduce((n, r) => n + Number(/^API_\w+: (\d+) more refusal/.exec(r.reason)?.[1] ?? 1), 0);
    let stored: AuditRecord[] = [];
    for (const deadline = Date.now() + 30_000; Date.now() < deadline; ) {
      stored = await audit();
      if (counted(refusalsOf(stored, 'API_FORBIDDEN')) === 32 && counted(refusalsOf(stored, 'API_THROTTLED')) === 30) break;
    }
    const forbidden = refusalsOf(stored, 'API_FORBIDDEN');
    const throttledNotes = refusalsOf(stored, 'API_THROTTLED');
    // 32 refusals of carol (1 earlier, 1 above, 30 in the flood), 30 throttled halts: every one counted ...
    expect(counted(forbidden)).toBe(32);
    expect(counted(throttledNotes)).toBe(30);
    // ... in a bounded number of records (one at once and one summary per 4 s window).
    expect(forbidden.length).toBeLessThanOrEqual(4);
    expect(throttledNotes.length).toBeLessThanOrEqual(3);
    expect(forbidden.find((r) => /more refusal/.test(r.reason))!.reason).toMatch(/^API_FORBIDDEN: \d+ more refusal\(s\) \(403\) for carol from \S+ between .*: HALT ×\d+; on exp-b ×\d+$/);
    expect(throttledNotes[0]!.reason).toMatch(/^API_THROTTLED: HALT refused \(429\) for a caller with an unknown token from /);
    expect(stored.every((r) => r.sourceTopic !== 'admin-api' || r.decision === 'REJECTED')).toBe(true);

    // GET /audit pages through the whole log by sequence, not only the 5 records in memory.
    const paged: AuditRecord[] = [];
    let pages = 0;
    for (let after: number | null = 0; after !== null; pages++) {
      const page = await call('GET', `/audit?after=${after}&limit=7`, carol);
      expect(page.status, JSON.stringify(page.body)).toBe(200);
      const body = page.body as { records: AuditRecord[]; next: number | null; head: number };
      paged.push(...body.records);
      after = body.next;
    }
    expect(pages).toBe(Math.ceil(stored.length / 7));
    expect(paged).toEqual(stored);
    const expA: AuditRecord[] = [];
    for (let after: number | null = 0; after !== null; ) {
      const body = (await call('GET', `/audit?after=${after}&limit=2&experimentId=exp-a`, alice)).body as { records: AuditRecord[]; next: number | null };
      expA.push(...body.records);
      after = body.next;
    }
    expect(expA).toEqual(stored.filter((r) => r.experimentId === 'exp-a'));
    expect(((await call('GET', '/audit?limit=3', carol)).body as { records: AuditRecord[] }).records).toEqual(stored.slice(-3));
    expect((await call('GET', `/audit?after=${stored.length}`, carol)).body).toEqual({ records: [], next: null, head: stored.length });
    for (const bad of ['after=-1', 'limit=1001', 'after=x', `experimentId=${'x'.repeat(200)}`]) expect((await call('GET', `/audit?${bad}`, carol)).status, bad).toBe(400);

    // Every request string has a cap, answered with 400 naming the field (never the router's 414).
    const tooLongReason = await call('POST', '/experiments/exp-b/halt', alice, { reason: 'r'.repeat(501) });
    expect(tooLongReason.status).toBe(400);
    expect(tooLongReason.body).toMatchObject({ message: 'reason: at most 500 characters (got 501)' });
    for (const length of [150, 5_000]) {
      const longId = await call('POST', `/experiments/${'x'.repeat(length)}/halt`, alice, { reason: 'long id' });
      expect(longId.status).toBe(400);
      expect(longId.body).toMatchObject({ message: `id: at most 128 characters (got ${length})` });
    }
    expect((await call('POST', '/experiments/exp-b/halt', alice, { reason: 'big body', padding: 'p'.repeat(20_000) })).status).toBe(413);

    // The chain is intact as stored, and continues across a crash of the control service;
    // the nonces survive it, so the old valid halt is still a replay.
    expect(verifyChain(stored)).toEqual({ ok: true, records: stored.length });
    const verify = await runExpctl(['audit', 'verify'], { env: { ...process.env, ...env, LOG_LEVEL: 'warn' } });
    expect(verify.stdout, verify.stderr).toMatch(new RegExp(`^audit chain intact: ${stored.length} record\\(s\\), head sequence ${stored.length}`));
    expect(verify.status).toBe(0);
    control.process.kill('SIGKILL');
    await control.exited;
    const restarted = spawnService('services/control/main.ts', env);
    children.push(restarted);
    await restarted.started;
    const replayer = pipeline.kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
    await replayer.connect();
    await replayer.send({ topic: pipeline.topics.control, acks: -1, messages: [{ key: 'attack', value: valid }] });
    await replayer.disconnect();
    const all = await audit();
    expect(all).toHaveLength(stored.length + 1);
    expect(all.at(-1)!.reason).toMatch(/^REPLAYED/);
    expect(verifyChain(all)).toEqual({ ok: true, records: stored.length + 1 });
    expect(restarted.log()).toMatch(/"msg":"control.state_restored"/);
    expect((await states()).slice(SETUP).map((s) => [s.experimentId, s.status])).toEqual([['exp-a', 'HALTED'], ['exp-b', 'HALTED'], ['exp-b', 'RUNNING'], ['exp-b', 'HALTED'], ['exp-b', 'RUNNING']]);

    // expctl halt through the (restarted) admin API: an operator's token works, an analyst's is refused.
    const restartedApi = /"url":"(http:\/\/[^"]+)","msg":"admin API listening"/.exec(restarted.log())![1]!;
    const expctl = (token: string, ...args: string[]) => runExpctl(args, { env: { ...process.env, ...env, EXPCTL_TOKEN: token, EXPCTL_API_URL: restartedApi, LOG_LEVEL: 'warn' } });
    const byCli = await expctl(alice, 'halt', 'exp-b', '--reason', 'halted from the command line');
    expect(byCli.stdout, byCli.stderr).toMatch(new RegExp(`^exp-b: halted \\(HALT: halted from the command line \\(requested by alice via the admin API\\); audit record ${stored.length + 2}\\)`));
    expect(byCli.status).toBe(0);
    const refused = await expctl(carol, 'resume', 'exp-b', '--reason', 'analyst tries');
    expect(refused.status).toBe(2);
    expect(refused.stderr).toMatch(/resume refused \(403 FORBIDDEN\): carol lacks the role/);
    expect((await expctl(alice, 'halt', 'exp-b')).status).toBe(1); // commander: missing --reason
  }, 180_000);
});
