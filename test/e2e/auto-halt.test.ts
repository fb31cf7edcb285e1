import { describe, expect, it } from 'vitest';
import { eventSchemas } from '../../services/common/eventSchemas.ts';
import { parseDefinition } from '../../services/common/experimentDefinition.ts';
import { decodeExperimentStatus } from '../../services/common/experimentStatus.ts';
import { consumerGroup } from '../../services/common/topics.ts';
import { unframe } from '../../services/common/wireFormat.ts';
import { decodeCommandBody } from '../../services/common/contracts/controlCommands.ts';
import { spawnService, waitUntilCaughtUp, type ChildService } from '../support/childService.ts';
import { testPipeline } from '../support/pipeline.ts';
import { gaussian, seededRandom } from '../../services/common/random.ts';
import { readTopic } from '../support/topicReader.ts';

const USERS = 3_000;

describe('auto-halt, end to end through ingest, aggregate and guard', () => {
  const pipeline = testPipeline('auto-halt', { principals: { guardian: ['guardian'] } });
  // Stopped after the test, passed or failed, by test/support/processHygiene.ts.
  const services: ChildService[] = [];

  it('halts the experiment with a sample ratio mismatch and the one with a guardrail regression, never the healthy A/A', async () => {
    const definition = (id: string) =>
      parseDefinition({
        id, name: id, hypothesis: 'h', owner: 'test',
        variants: [{ id: 'control', weight: 0.5 }, { id: 'treatment', weight: 0.5 }],
        primaryMetrics: [{ name: 'orders', type: 'conversion' }],
        guardrailMetrics: [{ name: 'latency', type: 'sum', harmfulDirection: 'increase', tolerance: { kind: 'relative', value: 0.05 } }],
        minimumSampleSize: 200, plannedSampleSize: USERS,
      }, id);
    const env = { ...pipeline.env, GUARD_KEY_FILE: pipeline.fixture.keyFile('guardian'), ADMIN_API_PORT: '0', KAFKA_SESSION_TIMEOUT_MS: '6000' };
    // The experimenter defines and starts the experiments through the control service; the
    // other services start afterwards, reading the published definitions and states as they are.
    services.push(spawnService('services/control/main.ts', env));
    await services[0]!.started;
    await pipeline.defineThroughControl(['healthy-aa', 'broken-split', 'slow-treatment'].map(definition));
    for (const service of ['ingest', 'aggregate', 'guard']) services.push(spawnService(`services/${service}/main.ts`, env));
    await Promise.all(services.map((s) => s.started));

    const producer = await pipeline.producer();
    const random = seededRandom(99);
    const now = Date.now();
    // Exposures first, metrics once ingest has passed every exposure on: the two raw topics
    // are consumed independently, so a metric sent right behind its exposure can reach
    // exp.events ahead of it and would not count (attribution needs the exposure first).
    const exposures: Promise<void>[] = [];
    const metrics: { userId: string; value: number }[] = [];
    for (let u = 0; u < USERS; u++) {
      for (const experimentId of ['healthy-aa', 'broken-split', 'slow-treatment']) {
        const userId = `${experimentId}-user-${u}`;
        // broken-split assigns 60 % to treatment against a planned 50 %.
        const variantId = random() < (experimentId === 'broken-split' ? 0.6 : 0.5) ? 'treatment' : 'control';
        const slow = experimentId === 'slow-treatment' && variantId === 'treatment' ? 1.3 : 1;
        exposures.push(producer.sendExposure({ eventId: `x-${userId}`, experimentId, variantId, userId, eventTime: now, context: null }));
        metrics.push({ userId, value: (200 + 40 * gaussian(random)) * slow });
      }
    }
    await Promise.all(exposures);
    await waitUntilCaughtUp(pipeline.kafka, consumerGroup(pipeline.prefix, 'ingest'), [pipeline.topics.exposuresRaw, pipeline.topics.metricsRaw]);
    await Promise.all(metrics.map(({ userId, value }) => producer.sendMetric({ eventId: `m-${userId}`, userId, metric: 'latency', value, eventTime: now + 1 })));
    await producer.close();

    // Wait until ingest, aggregate and guard have all caught up with everything produced, in
    // pipeline order: each stage commits its outputs with its offsets, so once it has caught up
    // its downstream topic is complete.
    await waitUntilCaughtUp(pipeline.kafka, consumerGroup(pipeline.prefix, 'ingest'), [pipeline.topics.exposuresRaw, pipeline.topics.metricsRaw]);
    await waitUntilCaughtUp(pipeline.kafka, consumerGroup(pipeline.prefix, 'aggregate'), [pipeline.topics.events]);
    await waitUntilCaughtUp(pipeline.kafka, consumerGroup(pipeline.prefix, 'guard'), [pipeline.topics.aggregates]);

    const readHalts = async () => (await readTopic(pipeline.kafka, pipeline.topics.control)).map(({ message }) => decodeCommandBody((unframe(message.value) as { body: Buffer }).body)).filter((c) => c.action === 'HALT');
    const commands = await readHalts();
    const halted = commands.map((c) => c.experimentId).sort();
    expect(halted).toEqual(['broken-split', 'slow-treatment']);
    for (const command of commands) {
      expect(command.action).toBe('HALT');
      expect(command.issuer).toBe('guardian');
    }
    // The control service verified the guardian's signatures and halted both on exp.state.
    await waitUntilCaughtUp(pipeline.kafka, consumerGroup(pipeline.prefix, 'control'), [pipeline.topics.control]);
    const statuses = (await readTopic(pipeline.kafka, pipeline.topics.state)).map(({ message }) => decodeExperimentStatus(message.value!)!);
    expect(statuses.filter((s) => s.status === 'HALTED').map((s) => [s.experimentId, s.status, s.by]).sort()).toEqual([['broken-split', 'HALTED', 'guardian'], ['slow-treatment', 'HALTED', 'guardian']]);
    const srm = JSON.parse(commands.find((c) => c.experimentId === 'broken-split')!.evidence) as Record<string, unknown>;
    // SRM's share of the default false-halt budget (a fifth of 0.05), named in the evidence.
    expect(srm).toMatchObject({ definitionVersion: 1, level: { source: 'budget', spends: true, falseHaltBudget: 0.05 } });
    expect(srm.alpha as number).toBeCloseTo(0.01, 15);
    expect(srm.pValue as number).toBeLessThan(0.01);
    const guardrail = JSON.parse(commands.find((c) => c.experimentId === 'slow-treatment')!.evidence) as Record<string, unknown>;
    expect(guardrail).toMatchObject({ harmfulDirection: 'increase', control: 'control', side: 'lower', level: { source: 'budget' } });
    expect(guardrail.lower as number).toBeGreaterThan(guardrail.tolerance as number);

    const anomalies = (await readTopic(pipeline.kafka, pipeline.topics.anomalies)).map(({ message }) => eventSchemas().anomaly.fromBuffer((unframe(message.value) as { body: Buffer }).body) as { experimentId: string; type: string; halted: boolean });
    expect(anomalies.map((a) => [a.experimentId, a.type, a.halted]).sort()).toEqual([['broken-split', 'SAMPLE_RATIO_MISMATCH', true], ['slow-treatment', 'GUARDRAIL_REGRESSION', true]]);

    // Once per incident, across restarts: a new guard process restores the incidents from its
    // changelog and does not halt again when more (still mismatched) data arrives.
    const guard = services.pop()!;
    guard.process.kill('SIGKILL');
    await guard.exited;
    const restarted = spawnService('services/guard/main.ts', env);
    services.push(restarted);
    await restarted.started;
    const more = await pipeline.producer();
    const moreSends: Promise<void>[] = [];
    for (let u = USERS; u < USERS + 500; u++) {
      const variantId = random() < 0.6 ? 'treatment' : 'control';
      moreSends.push(more.sendExposure({ eventId: `x-more-${u}`, experimentId: 'broken-split', variantId, userId: `broken-split-user-${u}`, eventTime: now, context: null }));
    }
    // slow-treatment is halted: a split this broken would be an SRM incident, but the guard no longer acts on it.
    for (let u = USERS; u < USERS + 1_500; u++) {
      moreSends.push(more.sendExposure({ eventId: `x-more-${u}`, experimentId: 'slow-treatment', variantId: 'treatment', userId: `slow-treatment-user-${u}`, eventTime: now, context: null }));
    }
    await Promise.all(moreSends);
    await more.close();
    await waitUntilCaughtUp(pipeline.kafka, consumerGroup(pipeline.prefix, 'ingest'), [pipeline.topics.exposuresRaw, pipeline.topics.metricsRaw]);
    await waitUntilCaughtUp(pipeline.kafka, consumerGroup(pipeline.prefix, 'aggregate'), [pipeline.topics.events]);
    await waitUntilCaughtUp(pipeline.kafka, consumerGroup(pipeline.prefix, 'guard'), [pipeline.topics.aggregates]);
    await restarted.waitForLog(/"msg":"guard.state_restored"/);
    expect(await readHalts()).toHaveLength(2);
    const anomaliesAfter = await readTopic(pipeline.kafka, pipeline.topics.anomalies);
    expect(anomaliesAfter).toHaveLength(2);
  }, 240_000);
});
