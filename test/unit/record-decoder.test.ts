import { describe, expect, it } from 'vitest';
import type { ExposureEvent } from '../../services/common/contracts/exposures.ts';
import { eventSchemas, schemaText } from '../../services/common/eventSchemas.ts';
import type { SchemaRegistryClient } from '../../services/common/schemaRegistryClient.ts';
import { valueSubject } from '../../services/common/topics.ts';
import { frame } from '../../services/common/wireFormat.ts';
import { RecordDecoder } from '../../services/ingest/recordDecoder.ts';

const TOPIC = 'exp.exposures.raw';
const exposure: ExposureEvent = { eventId: 'e1', experimentId: 'exp', variantId: 'a', userId: 'u1', eventTime: 1_700_000_000_000, context: null };

/** A registry that knows schema 7 under the raw exposures subject, counting its round trips (a pure unit: no network). */
function countingRegistry(options: { failFirst?: boolean } = {}) {
  const calls = { schemaById: 0, subjectsOfId: 0 };
  let fail = options.failFirst ?? false;
  const answer = async <T>(value: T): Promise<T> => {
    await new Promise((resolve) => setImmediate(resolve));
    if (fail) {
      fail = false;
      throw new Error('registry unavailable');
    }
    return value;
  };
  const registry = {
    schemaById: (id: number) => {
      calls.schemaById++;
      return answer(id === 7 ? schemaText(eventSchemas().exposure) : undefined);
    },
    subjectsOfId: (id: number) => {
      calls.subjectsOfId++;
      return answer(id === 7 ? [{ subject: valueSubject(TOPIC), version: 1 }] : undefined);
    },
  } as unknown as SchemaRegistryClient;
  return { registry, calls };
}

const record = (schemaId: number) => frame(schemaId, eventSchemas().exposure.toBuffer(exposure));

describe('RecordDecoder', () => {
  it('asks the registry once for a schema id however many records ask at the same time', async () => {
    const { registry, calls } = countingRegistry();
    const decoder = new RecordDecoder(registry, new Map([[TOPIC, 'exposuresRaw']]), 100_000);
    const decoded = await Promise.all(Array.from({ length: 500 }, () => decoder.decode(TOPIC, record(7))));
    expect(decoded.every((d) => d.ok && d.event.kind === 'exposure' && d.event.userId === 'u1')).toBe(true);
    expect(calls).toEqual({ schemaById: 1, subjectsOfId: 1 });
    // Cached from then on.
    await decoder.decode(TOPIC, record(7));
    expect(calls).toEqual({ schemaById: 1, subjectsOfId: 1 });
  });

  it('shares an unknown id and a failed lookup too, and asks again after a failure', async () => {
    const { registry, calls } = countingRegistry({ failFirst: true });
    const decoder = new RecordDecoder(registry, new Map([[TOPIC, 'exposuresRaw']]), 100_000);
    // A registry outage is retriable: every record waiting on it fails with it, none is condemned.
    const failed = await Promise.allSettled(Array.from({ length: 50 }, () => decoder.decode(TOPIC, record(7))));
    expect(failed.every((r) => r.status === 'rejected')).toBe(true);
    expect(calls.schemaById).toBe(1);
    expect((await decoder.decode(TOPIC, record(7))).ok).toBe(true);
    expect(calls.schemaById).toBe(2);
    const unknown = await Promise.all(Array.from({ length: 50 }, () => decoder.decode(TOPIC, record(8))));
    expect(unknown.every((d) => !d.ok && d.rejection.reason === 'UNKNOWN_SCHEMA_ID')).toBe(true);
    expect(calls.schemaById).toBe(3);
  });
});
