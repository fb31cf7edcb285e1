import { describe, expect, it } from 'vitest';
import { decodeCommandBody } from '../../services/common/contracts/controlCommands.ts';
import { eventSchemas } from '../../services/common/eventSchemas.ts';
import { consumerGroup } from '../../services/common/topics.ts';
import { unframe } from '../../services/common/wireFormat.ts';
import { spawnService, waitUntilCaughtUp, type ChildService } from '../support/childService.ts';
import { minimalDefinition, testPipeline } from '../support/pipeline.ts';
import { readTopic } from '../support/topicReader.ts';
import { waitFor } from '../support/waitFor.ts';

const MINUTE = 60_000;
const PARTITIONS = 3; // of exp.aggregates (services/common/topics.ts)

interface AnomalyRow {
  experimentId: string;
  type: string;
  severity: string;
  halted: boolean;
  detectedAt: number;
  evidence: string;
}

describe('NO_TRAFFIC, end to end through ingest, aggregate and the guard\'s punctuation', () => {
  const pipeline = testPipeline('no-traffic', { principals: { guardian: ['guardian'] } });
  // Stopped after the test, passed or failed, by test/support/processHygiene.ts.
  const services: ChildService[] = [];

  it('warns once for a running experiment whose traffic stopped, not again on later punctuations or after a restart, and never for a halted one', async () => {
    // The guard evaluates every running experiment it owns every 300 ms of wall-clock time.
    const env = { ...pipeline.env, GUARD_KEY_FILE: pipeline.fixture.keyFile('guardian'), GUARD_PUNCTUATE_MS: '300', KAFKA_SESSION_TIMEOUT_MS: '6000' };
    const startGuard = () => spawnService('services/guard/main.ts', env);
    for (const service of ['services/ingest/main.ts', 'services/aggregate/main.ts']) services.push(spawnService(service, env));
    services.push(startGuard());
    await Promise.all(services.map((s) => s.started));

    // Exposures are bucketed by event-time minute and silence counts from the end of the last
    // minute with exposures. All traffic is dated in the last millisecond of the previous
    // minute, so its minute ended at `minuteEnd`; each definition's noTrafficMinutes (any
    // positive number of minutes) is chosen so that its silence runs out a fixed time from now.
    const definedAt = Date.now();
    const minuteEnd = Math.floor(definedAt / MINUTE) * MINUTE;
    const eventTime = minuteEnd - 1;
    const quietAt = { 'goes-quiet': definedAt + 25_000, 'halted-quiet': definedAt + 35_000 };
    const definitions = Object.entries(quietAt).map(([id, at]) => ({ ...minimalDefinition(id, ['control', 'treatment']), noTrafficMinutes: (at - minuteEnd) / MINUTE }));
    await pipeline.publishDefinitions(definitions);
    // Ingest drops exposures of experiments it does not know yet: wait until every service has both definitions and states.
    for (const service of services) {
      for (const id of Object.keys(quietAt)) {
        await service.waitForLog(new RegExp(`"experimentId":"${id}"[^\\n]*"msg":"definition: in force"`));
        await service.waitForLog(new RegExp(`"experimentId":"${id}","status":"RUNNING"[^\\n]*"msg":"experiment.state: in force"`));
      }
    }

    const producer = await pipeline.producer();
    const sends: Promise<void>[] = [];
    for (const experimentId of Object.keys(quietAt)) {
      for (let u = 0; u < 40; u++) {
        const userId = `${experimentId}-user-${u}`;
        sends.push(producer.sendExposure({ eventId: `x-${userId}`, experimentId, variantId: u % 2 === 0 ? 'control' : 'treatment', userId, eventTime, context: null }));
      }
    }
    await Promise.all(sends);
    await producer.close();
    // Then nothing: every delta has reached the guard once it has caught up.
    await waitUntilCaughtUp(pipeline.kafka, consumerGroup(pipeline.prefix, 'ingest'), [pipeline.topics.exposuresRaw]);
    await waitUntilCaughtUp(pipeline.kafka, consumerGroup(pipeline.prefix, 'aggregate'), [pipeline.topics.events]);
    await waitUntilCaughtUp(pipeline.kafka, consumerGroup(pipeline.prefix, 'guard'), [pipeline.topics.aggregates]);
    const caughtUpAt = Date.now();
    expect(caughtUpAt, 'the pipeline took so long that the silence ran out before its last delta was judged: the test would not show the punctuation').toBeLessThan(quietAt['goes-quiet']);

    // halted-quiet is halted (as the control service writes it) before its silence runs out.
    await pipeline.publishDefinitions(definitions.filter((d) => d.id === 'halted-quiet'), { version: 2, status: 'HALTED' });
    await services[2]!.waitForLog(/"experimentId":"halted-quiet","status":"HALTED"[^\n]*"msg":"experiment.state: in force"/);
    expect(Date.now()).toBeLessThan(quietAt['halted-quiet']);

    const readAnomalies = async () => (await readTopic(pipeline.kafka, pipeline.topics.anomalies)).map(({ message }) => eventSchemas().anomaly.fromBuffer((unframe(message.value) as { body: Buffer }).body) as AnomalyRow);
    let anomalies: AnomalyRow[] = [];
    await waitFor(async () => (anomalies = await readAnomalies()).length > 0, { timeoutMs: 60_000, intervalMs: 500, message: () => `no anomaly on ${pipeline.topics.anomalies}; the guard's log ends:\n${services[2]!.log().slice(-3_000)}` });
    expect(anomalies).toHaveLength(1);
    const [warning] = anomalies;
    expect(warning).toMatchObject({ experimentId: 'goes-quiet', type: 'NO_TRAFFIC', severity: 'warning', halted: false });
    // Raised by a punctuation: after the last delta was judged, and once the silence had run out.
    expect(warning!.detectedAt).toBeGreaterThanOrEqual(Math.max(caughtUpAt, quietAt['goes-quiet']));
    expect(JSON.parse(warning!.evidence)).toMatchObject({ lastExposureMinute: minuteEnd - MINUTE, noTrafficMinutes: definitions[0]!.noTrafficMinutes });

    const punctuations = async (guard: ChildService) => {
      const url = /"metrics":"(http:[^"]+)"/.exec(guard.log())![1]!;
      return Number(/^guard_punctuations_total(?:{[^}]*})? (\d+)/m.exec(await (await fetch(url)).text())?.[1] ?? 0);
    };
    // Three more rounds over every partition, the last ones after halted-quiet's silence ran out too.
    const waitForRounds = async (guard: ChildService, rounds: number, after: number) => {
      const target = (await punctuations(guard)) + rounds * PARTITIONS;
      let seen = 0;
      await waitFor(async () => Date.now() > after && (seen = await punctuations(guard)) >= target, { timeoutMs: 60_000, intervalMs: 300, message: () => `the guard committed ${seen} punctuations, expected ${target}` });
    };
    await waitForRounds(services[2]!, 3, quietAt['halted-quiet']);
    await waitForRounds(services[2]!, 3, 0);
    expect((await readAnomalies()).map((a) => [a.experimentId, a.type])).toEqual([['goes-quiet', 'NO_TRAFFIC']]);

    // A new guard process (the old one killed, nothing left to it) restores the incident from
    // its changelog, although no input arrives to prepare its partitions, and stays quiet.
    const guard = services.pop()!;
    guard.process.kill('SIGKILL');
    await guard.exited;
    const restarted = startGuard();
    services.push(restarted);
    await restarted.started;
    await waitForRounds(restarted, 3, 0);
    expect(restarted.log()).toMatch(/"msg":"guard.state_restored"/);
    expect((await readAnomalies()).map((a) => [a.experimentId, a.type])).toEqual([['goes-quiet', 'NO_TRAFFIC']]);
    // A warning halts nothing.
    const commands = (await readTopic(pipeline.kafka, pipeline.topics.control)).map(({ message }) => decodeCommandBody((unframe(message.value) as { body: Buffer }).body));
    expect(commands).toEqual([]);
  }, 240_000);
});
