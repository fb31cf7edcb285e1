import type { Kafka } from 'kafkajs';
import { userEvents } from '../services/cli/demo/demoTraffic.ts';
import { seededRandom } from '../services/common/random.ts';
import type { SchemaRegistryClient } from '../services/common/schemaRegistryClient.ts';
import type { TopicNames } from '../services/common/topics.ts';
import { EventProducer } from '../services/producer/eventProducer.ts';

/**
 * Produces at least `targetEvents` raw events from the demo's user model
 * (services/cli/demo/demoTraffic.ts, seeded: the same events every time) through the
 * producer API, whole users at a time, with event times from `now`. Returns how many events
 * and users it produced.
 */
export async function produceDemoEvents(context: { kafka: Kafka; registry: SchemaRegistryClient; topics: TopicNames }, targetEvents: number, now = Date.now()): Promise<{ events: number; users: number }> {
  const producer = await EventProducer.create({ ...context, maxBatch: 5_000 });
  const random = seededRandom(11);
  let events = 0;
  let users = 0;
  let sends: Promise<void>[] = [];
  try {
    while (events < targetEvents) {
      for (const e of userEvents(users++, now, random)) {
        sends.push(e.kind === 'exposure' ? producer.sendExposure(e.event) : producer.sendMetric(e.event));
        events++;
      }
      if (sends.length >= 20_000) {
        await Promise.all(sends);
        sends = [];
      }
    }
    await Promise.all(sends);
  } finally {
    await producer.close();
  }
  return { events, users };
}
