import { createHmac } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { freePorts } from '../../infra/kafka/freePort.ts';
import { moveExperiment } from '../../services/cli/experiments/controlCommands.ts';
import { anomalies } from '../../services/common/contracts/anomalies.ts';
import type { DeliveryRecord } from '../../services/notify/webhookDelivery.ts';
import { spawnService, type ChildService } from '../support/childService.ts';
import { minimalDefinition, testPipeline } from '../support/pipeline.ts';
import { waitFor } from '../support/waitFor.ts';

/** A local webhook receiver: records every request (raw body, headers, arrival) and answers `status`. */
function receiver(status = 200) {
  const received: { headers: IncomingHttpHeaders; body: string; at: number }[] = [];
  const server: Server = createServer((request, response) => {
    let body = '';
    request.on('data', (chunk: Buffer) => (body += chunk.toString()));
    request.on('end', () => {
      received.push({ headers: request.headers, body, at: Date.now() });
      response.writeHead(status).end();
    });
  });
  return {
    received,
    listen: (port: number) => new Promise<void>((ok) => server.listen(port, '127.0.0.1', () => ok())),
    close: () => new Promise<void>((ok) => server.close(() => ok())),
  };
}

const SECRETS = { ops: 'ops-secret-0123456789', team: 'team-secret-0123456789', refusing: 'refusing-secret-012345' };

describe('webhook notifications', () => {
  const pipeline = testPipeline('notify', { principals: { alice: ['operator'] } });
  const children: ChildService[] = [];
  const receivers = { ops: receiver(), team: receiver(), refusing: receiver(400) };
  afterAll(async () => {
    for (const c of children) c.process.kill('SIGTERM');
    await Promise.all(children.map((c) => c.exited));
    await Promise.all(Object.values(receivers).map((r) => r.close().catch(() => {})));
  });

  it('signs Slack-compatible notifications of lifecycle moves, halts, resumes and anomalies, and retries a receiver that is down until it is back', async () => {
    const [opsPort, teamPort, refusingPort] = await freePorts(3);
    await receivers.ops.listen(opsPort!);
    await receivers.refusing.listen(refusingPort!);
    // The team's receiver is down: nothing listens on its port yet.
    const dir = mkdtempSync(join(tmpdir(), 'notify-'));
    const deliveryLog = join(dir, 'deliveries.jsonl');
    writeFileSync(join(dir, 'webhooks.json'), JSON.stringify({ webhooks: [
      { id: 'ops', url: `http://127.0.0.1:${opsPort}/hook`, secret: SECRETS.ops },
      { id: 'checkout-team', url: `http://127.0.0.1:${teamPort}/hook`, secretEnv: 'TEAM_WEBHOOK_SECRET', experiments: ['checkout'], events: ['halt', 'resume', 'anomaly'] },
      { id: 'refusing', url: `http://127.0.0.1:${refusingPort}/hook`, secret: SECRETS.refusing, events: ['halt'] },
    ] }));
    const env = { ...pipeline.env, NOTIFY_WEBHOOKS_FILE: join(dir, 'webhooks.json'), NOTIFY_DELIVERY_LOG: deliveryLog, NOTIFY_RETRY_BASE_MS: '200', NOTIFY_RETRY_MAX_MS: '1600', NOTIFY_MAX_ATTEMPTS: '40', NOTIFY_START_FROM: 'earliest', TEAM_WEBHOOK_SECRET: SECRETS.team, ADMIN_API_PORT: '0' };
    children.push(spawnService('services/control/main.ts', env), spawnService('services/notify/main.ts', env));
    await Promise.all(children.map((c) => c.started));

    await pipeline.defineThroughControl([minimalDefinition('checkout', ['control', 'treatment']), minimalDefinition('search', ['control', 'treatment'])]);
    const alice = pipeline.fixture.signer('alice');
    // The halt is decided while a receiver is down: the control path does not wait for webhooks.
    const halt = await moveExperiment(pipeline, alice, 'checkout', 'HALT', 'refunds <spiking> & more');
    expect(halt.decision).toBe('ACCEPTED');
    const anomalyOut = await anomalies.bind(pipeline.registry, pipeline.topics);
    const producer = pipeline.kafka.producer();
    await producer.connect();
    const anomaly = { anomalyId: 'checkout:SRM:1', experimentId: 'checkout', type: 'SAMPLE_RATIO_MISMATCH', severity: 'critical', variantId: null, metric: null, definitionVersion: 1, detectedAt: Date.now(), halted: false, evidence: JSON.stringify({ users: { control: 10, treatment: 30 } }) };
    await producer.send({ topic: anomalyOut.topic, messages: [anomalyOut.message(anomaly)] });
    await producer.disconnect();
    expect((await moveExperiment(pipeline, alice, 'checkout', 'RESUME', 'fixed')).decision).toBe('ACCEPTED');

    // ops gets everything: DEFINE and START of both, the halt, the anomaly, the resume.
    const bodies = (r: ReturnType<typeof receiver>) => r.received.map((x) => JSON.parse(x.body) as { text: string; blocks: { type: string; text: { type: string; text: string } }[]; expstream: Record<string, unknown> });
    await waitFor(() => receivers.ops.received.length >= 7, { timeoutMs: 30_000, message: () => `ops received ${receivers.ops.received.length}: ${receivers.ops.received.map((r) => r.body.slice(0, 80)).join(' | ')}` });
    const ops = bodies(receivers.ops);
    expect(ops.map((b) => `${b.expstream.kind}:${b.expstream.experimentId}:${b.expstream.action ?? b.expstream.type}`).sort()).toEqual([
      'anomaly:checkout:SAMPLE_RATIO_MISMATCH', 'halt:checkout:HALT', 'lifecycle:checkout:DEFINE', 'lifecycle:checkout:START', 'lifecycle:search:DEFINE', 'lifecycle:search:START', 'resume:checkout:RESUME',
    ]);
    for (const [i, r] of receivers.ops.received.entries()) {
      const timestamp = r.headers['x-expstream-timestamp'] as string;
      expect(r.headers['x-expstream-signature']).toBe(`v1=${createHmac('sha256', SECRETS.ops).update(`${timestamp}.${r.body}`).digest('hex')}`);
      expect(r.headers['content-type']).toBe('application/json');
      expect(typeof ops[i]!.text).toBe('string');
      expect(ops[i]!.blocks[0]).toMatchObject({ type: 'section', text: { type: 'mrkdwn' } });
    }
    expect(new Set(receivers.ops.received.map((r) => r.headers['x-expstream-delivery'])).size).toBe(7);
    // Slack's control characters in the reason are escaped in the text.
    expect(ops.find((b) => b.expstream.kind === 'halt')!.text).toContain('refunds &lt;spiking&gt; &amp; more');

    // The refusing receiver answers 400: given up after one attempt, recorded.
    const log = () => readFileSync(deliveryLog, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as DeliveryRecord);
    await waitFor(() => log().some((r) => r.record === 'outcome' && r.webhook === 'refusing'), { timeoutMs: 10_000, message: () => 'no outcome for the refusing webhook' });
    expect(log().filter((r) => r.webhook === 'refusing')).toMatchObject([{ record: 'attempt', attempt: 1, status: 400, nextAttemptInMs: null }, { record: 'outcome', outcome: 'GAVE_UP', attempts: 1, status: 400 }]);

    // The team's receiver is down: its three notifications are retried with growing waits.
    const teamAttempts = () => log().filter((r): r is Extract<DeliveryRecord, { record: 'attempt' }> => r.record === 'attempt' && r.webhook === 'checkout-team');
    await waitFor(() => teamAttempts().filter((a) => a.kind === 'halt').length >= 5, { timeoutMs: 30_000, message: () => `attempts so far: ${teamAttempts().length}` });
    expect(receivers.team.received).toHaveLength(0);
    const failed = teamAttempts().filter((a) => a.kind === 'halt');
    expect(failed.every((a) => a.status === null && a.error !== null)).toBe(true);
    const waits = failed.map((a) => a.nextAttemptInMs!);
    // 200 ms doubling (±20 %) up to 1.6 s.
    for (const [i, wait] of waits.slice(0, 4).entries()) {
      expect(wait).toBeGreaterThanOrEqual(Math.floor(0.8 * 200 * 2 ** i));
      expect(wait).toBeLessThanOrEqual(Math.ceil(1.2 * 200 * 2 ** i));
    }
    expect(Math.max(...waits)).toBeLessThanOrEqual(1_600);

    await receivers.team.listen(teamPort!);
    const backAt = Date.now();
    await waitFor(() => receivers.team.received.length >= 3, { timeoutMs: 15_000, message: () => `the team received ${receivers.team.received.length}` });
    const team = bodies(receivers.team);
    expect(team.map((b) => b.expstream.kind).sort()).toEqual(['anomaly', 'halt', 'resume']);
    for (const r of receivers.team.received) expect(r.headers['x-expstream-signature']).toBe(`v1=${createHmac('sha256', SECRETS.team).update(`${r.headers['x-expstream-timestamp'] as string}.${r.body}`).digest('hex')}`);
    await waitFor(() => log().filter((r) => r.record === 'outcome' && r.webhook === 'checkout-team').length === 3, { timeoutMs: 10_000, message: () => 'the team deliveries are not all recorded' });
    const outcomes = log().filter((r): r is Extract<DeliveryRecord, { record: 'outcome' }> => r.record === 'outcome' && r.webhook === 'checkout-team');
    expect(outcomes.every((o) => o.outcome === 'DELIVERED' && o.status === 200 && o.attempts > 1)).toBe(true);
    const delayAfterBack = Math.max(...receivers.team.received.map((r) => r.at)) - backAt;
    // Within one capped wait (1.6 s) of coming back, plus an attempt's own time.
    expect(delayAfterBack).toBeLessThan(1_600 + 1_000);
    const figures = outcomes.map((o) => ({ kind: o.notificationId, attempts: o.attempts, retries: o.attempts - 1, firstAttemptToDeliveredMs: o.settledAt - o.firstAttemptAt }));
    process.stderr.write(`[notify figures] receiver down then up: ${JSON.stringify({ deliveries: figures, lastDeliveredMsAfterReceiverCameBack: delayAfterBack, opsDelivered: receivers.ops.received.length, opsAttempts: log().filter((r) => r.record === 'attempt' && r.webhook === 'ops').length })}\n`);
    // Everything that reached ops was delivered at the first attempt.
    expect(log().filter((r) => r.record === 'outcome' && r.webhook === 'ops')).toHaveLength(7);
    expect(log().filter((r) => r.record === 'attempt' && r.webhook === 'ops')).toHaveLength(7);
  }, 120_000);
});
