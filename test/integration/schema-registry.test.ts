import { SchemaRegistry, SchemaType } from '@kafkajs/confluent-schema-registry';
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../services/common/logger.ts';
import { startRegistry, type RunningRegistry } from '../../services/registry/server.ts';
import { stackEndpoints } from '../support/stack.ts';
import { uniqueName } from '../support/unique.ts';

const logger = createLogger({ level: 'warn', name: 'registry-test' });
const CONTENT_TYPE = 'application/vnd.schemaregistry.v1+json';

const schemaV1 = { type: 'record', name: 'Exposure', namespace: 'test', fields: [{ name: 'userId', type: 'string' }] };
const schemaV2 = { ...schemaV1, fields: [...schemaV1.fields, { name: 'variant', type: 'string', default: 'control' }] };
const incompatible = { ...schemaV1, fields: [{ name: 'userId', type: 'long' }] };

/** A raw HTTP call, as a client that is not kafkajs's would make it. */
async function call(registry: RunningRegistry, method: string, path: string, body?: unknown) {
  const response = await fetch(`${registry.url}${path}`, {
    method,
    headers: body === undefined ? {} : { 'content-type': CONTENT_TYPE },
    ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
  });
  const text = await response.text();
  return { status: response.status, contentType: response.headers.get('content-type'), body: text ? (JSON.parse(text) as Record<string, unknown>) : undefined };
}

const asBody = (schema: object) => ({ schema: JSON.stringify(schema) });

/** A request with exactly the headers given (no Content-Type unless named): node:http, since fetch adds one for a string body. */
function rawCall(registry: RunningRegistry, method: string, path: string, headers: Record<string, string>, body?: string): Promise<{ status: number; body: Record<string, unknown> | undefined }> {
  return new Promise((resolve, reject) => {
    const request = http.request(`${registry.url}${path}`, { method, headers: { ...headers, ...(body === undefined ? {} : { 'content-length': String(Buffer.byteLength(body)) }) } }, (response) => {
      let text = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (text += chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body: text ? (JSON.parse(text) as Record<string, unknown>) : undefined }));
    });
    request.on('error', reject);
    request.end(body);
  });
}

/** An Avro record schema whose JSON is about `bytes` long (documented fields: avsc compiles a record to a function of its fields, so there are few). */
function schemaOfSize(name: string, bytes: number): object {
  const fields = Array.from({ length: Math.ceil(bytes / 450) }, (_, i) => ({ name: `field_${String(i).padStart(8, '0')}`, type: 'string', doc: 'd'.repeat(400) }));
  return { type: 'record', name, fields };
}

describe('the schema registry through @kafkajs/confluent-schema-registry, unchanged', () => {
  let registry: RunningRegistry;
  beforeAll(async () => {
    registry = await startRegistry({ brokers: stackEndpoints().kafkaBrokers, topic: uniqueName('_schemas'), logger });
  });
  afterAll(async () => {
    await registry?.close();
  });

  it('registers, encodes in the Confluent wire format, decodes, and looks up ids', async () => {
    const client = new SchemaRegistry({ host: registry.url });
    const subject = uniqueName('exposures-value');
    const { id } = await client.register({ type: SchemaType.AVRO, schema: JSON.stringify(schemaV1) }, { subject });
    expect((await client.register({ type: SchemaType.AVRO, schema: JSON.stringify(schemaV1) }, { subject })).id).toBe(id);

    const encoded = await client.encode(id, { userId: 'u-1' });
    expect(encoded[0]).toBe(0);
    expect(encoded.readInt32BE(1)).toBe(id);
    expect(await client.decode(encoded)).toEqual({ userId: 'u-1' });

    const { id: id2 } = await client.register({ type: SchemaType.AVRO, schema: JSON.stringify(schemaV2) }, { subject });
    expect(id2).not.toBe(id);
    expect(await client.getLatestSchemaId(subject)).toBe(id2);
    expect(await client.getRegistryId(subject, 1)).toBe(id);
    expect(JSON.parse(JSON.stringify(await client.getSchema(id2)))).toMatchObject({ name: 'test.Exposure' });
    // Data written with v1 is readable by a v2 reader (BACKWARD): the evolution the registry allowed.
    const v2Reader = await client.getSchema(id2);
    expect(v2Reader).toBeDefined();
    await expect(client.register({ type: SchemaType.AVRO, schema: JSON.stringify(incompatible) }, { subject })).rejects.toThrow(/incompatible/i);
  });

  it('gives a schema registered under another subject the same global id', async () => {
    const client = new SchemaRegistry({ host: registry.url });
    const a = await client.register({ type: SchemaType.AVRO, schema: JSON.stringify(schemaV1) }, { subject: uniqueName('a-value') });
    const b = await client.register({ type: SchemaType.AVRO, schema: JSON.stringify(schemaV1) }, { subject: uniqueName('b-value') });
    expect(b.id).toBe(a.id);
  });
});

describe('the schema registry over raw HTTP: Confluent paths, shapes and error codes', () => {
  let registry: RunningRegistry;
  const subject = uniqueName('orders-value');
  beforeAll(async () => {
    registry = await startRegistry({ brokers: stackEndpoints().kafkaBrokers, topic: uniqueName('_schemas'), logger });
  });
  afterAll(async () => {
    await registry?.close();
  });

  it('registers and serves versions, schemas by id, lookups and subject lists', async () => {
    const first = await call(registry, 'POST', `/subjects/${subject}/versions`, asBody(schemaV1));
    expect(first.status).toBe(200);
    expect(first.contentType).toContain(CONTENT_TYPE);
    const second = await call(registry, 'POST', `/subjects/${subject}/versions`, { ...asBody(schemaV2), schemaType: 'AVRO' });
    const id1 = first.body!.id as number;
    const id2 = second.body!.id as number;

    expect((await call(registry, 'GET', '/subjects')).body).toContain(subject);
    expect((await call(registry, 'GET', `/subjects/${subject}/versions`)).body).toEqual([1, 2]);
    expect((await call(registry, 'GET', `/subjects/${subject}/versions/latest`)).body).toMatchObject({ subject, version: 2, id: id2 });
    expect((await call(registry, 'GET', `/subjects/${subject}/versions/1`)).body).toMatchObject({ subject, version: 1, id: id1 });
    expect((await call(registry, 'GET', `/subjects/${subject}/versions/1/schema`)).body).toMatchObject({ name: 'test.Exposure' });
    expect(JSON.parse((await call(registry, 'GET', `/schemas/ids/${id2}`)).body!.schema as string)).toMatchObject({ fields: [{ name: 'userId' }, { name: 'variant', default: 'control' }] });
    expect((await call(registry, 'GET', `/schemas/ids/${id1}/versions`)).body).toEqual([{ subject, version: 1 }]);
    // Lookup ignores formatting: the same schema with other whitespace and key order.
    const reformatted = JSON.stringify({ fields: schemaV1.fields, namespace: 'test', name: 'Exposure', type: 'record' }, null, 2);
    expect((await call(registry, 'POST', `/subjects/${subject}`, { schema: reformatted })).body).toMatchObject({ subject, version: 1, id: id1 });
  });

  it('answers every error with Confluent status and error code', async () => {
    const cases: [string, string, unknown, number, number][] = [
      ['GET', `/subjects/${uniqueName('missing')}/versions`, undefined, 404, 40401],
      ['GET', `/subjects/${subject}/versions/99`, undefined, 404, 40402],
      ['GET', `/subjects/${subject}/versions/not-a-version`, undefined, 422, 42202],
      ['GET', `/subjects/${subject}/versions/0`, undefined, 422, 42202],
      ['GET', '/schemas/ids/987654', undefined, 404, 40403],
      ['POST', `/subjects/${subject}`, asBody({ type: 'record', name: 'Unknown', fields: [] }), 404, 40403],
      ['POST', `/subjects/${uniqueName('missing')}`, asBody(schemaV1), 404, 40401],
      ['POST', `/subjects/${subject}/versions`, asBody(incompatible), 409, 409],
      ['POST', `/subjects/${subject}/versions`, { schema: '{"type":"record","name":"X"}' }, 422, 42201],
      ['POST', `/subjects/${subject}/versions`, { schema: '{not json' }, 422, 42201],
      ['POST', `/subjects/${subject}/versions`, { schema: '"string"', schemaType: 'PROTOBUF' }, 422, 42201],
      ['POST', `/subjects/${subject}/versions`, { nothing: true }, 422, 42201],
      ['PUT', '/config', { compatibility: 'SOMETIMES' }, 422, 42203],
      ['PUT', `/config/${subject}`, { compatibility: 42 }, 422, 42203],
      ['GET', `/config/${uniqueName('unconfigured')}`, undefined, 404, 40408],
      ['DELETE', `/subjects/${uniqueName('missing')}`, undefined, 404, 40401],
    ];
    for (const [method, path, body, status, errorCode] of cases) {
      const response = await call(registry, method, path, body);
      expect({ method, path, status: response.status, errorCode: response.body?.error_code }).toEqual({ method, path, status, errorCode });
      expect(typeof response.body?.message).toBe('string');
    }
    const malformed = await call(registry, 'POST', `/subjects/${subject}/versions`, '{"schema": ');
    expect(malformed.status).toBe(400);
  });

  it('checks compatibility against a version or the configured level, verbosely on request', async () => {
    expect((await call(registry, 'POST', `/compatibility/subjects/${subject}/versions/latest`, asBody(schemaV2))).body).toEqual({ is_compatible: true });
    const bad = await call(registry, 'POST', `/compatibility/subjects/${subject}/versions/latest?verbose=true`, asBody(incompatible));
    expect(bad.body).toMatchObject({ is_compatible: false });
    expect((bad.body!.messages as string[]).join()).toMatch(/BACKWARD/);
    expect((await call(registry, 'POST', `/compatibility/subjects/${subject}/versions`, asBody(incompatible))).body).toEqual({ is_compatible: false });
  });

  it('gets and sets global and per-subject compatibility; BACKWARD by default; NONE admits any change', async () => {
    expect((await call(registry, 'GET', '/config')).body).toEqual({ compatibilityLevel: 'BACKWARD' });
    const other = uniqueName('free-value');
    await call(registry, 'POST', `/subjects/${other}/versions`, asBody(schemaV1));
    expect((await call(registry, 'GET', `/config/${other}?defaultToGlobal=true`)).body).toEqual({ compatibilityLevel: 'BACKWARD' });
    expect((await call(registry, 'PUT', `/config/${other}`, { compatibility: 'NONE' })).body).toEqual({ compatibility: 'NONE' });
    expect((await call(registry, 'GET', `/config/${other}`)).body).toEqual({ compatibilityLevel: 'NONE' });
    expect((await call(registry, 'POST', `/subjects/${other}/versions`, asBody(incompatible))).status).toBe(200);
    expect((await call(registry, 'PUT', `/config/${other}`, { compatibility: 'FORWARD_TRANSITIVE' })).status).toBe(200);
    // An unrelated subject still follows the global level.
    expect((await call(registry, 'POST', `/subjects/${subject}/versions`, asBody(incompatible))).status).toBe(409);
  });

  it('soft-deletes versions and subjects: gone from listings, ids still resolvable, numbering continues', async () => {
    const doomed = uniqueName('doomed-value');
    const v1 = await call(registry, 'POST', `/subjects/${doomed}/versions`, asBody(schemaV1));
    await call(registry, 'POST', `/subjects/${doomed}/versions`, asBody(schemaV2));
    expect((await call(registry, 'DELETE', `/subjects/${doomed}/versions/2`)).body).toBe(2);
    expect((await call(registry, 'GET', `/subjects/${doomed}/versions`)).body).toEqual([1]);
    expect((await call(registry, 'DELETE', `/subjects/${doomed}`)).body).toEqual([1]);
    expect((await call(registry, 'GET', '/subjects')).body).not.toContain(doomed);
    expect((await call(registry, 'GET', '/subjects?deleted=true')).body).toContain(doomed);
    expect((await call(registry, 'GET', `/subjects/${doomed}/versions`)).status).toBe(404);
    expect((await call(registry, 'GET', `/schemas/ids/${v1.body!.id as number}`)).status).toBe(200);
    await call(registry, 'POST', `/subjects/${doomed}/versions`, asBody(schemaV1));
    expect((await call(registry, 'GET', `/subjects/${doomed}/versions`)).body).toEqual([3]);
    expect((await call(registry, 'DELETE', `/subjects/${doomed}?permanent=true`)).status).toBe(400);
  });
});

describe('the schema registry on hostile sizes and edge cases, as Confluent answers them', () => {
  let registry: RunningRegistry;
  const subject = uniqueName('edges-value');
  beforeAll(async () => {
    registry = await startRegistry({ brokers: stackEndpoints().kafkaBrokers, topic: uniqueName('_schemas'), logger });
    await call(registry, 'POST', `/subjects/${subject}/versions`, asBody(schemaV1));
  });
  afterAll(async () => {
    await registry?.close();
  });

  it('takes subjects of up to 255 characters, refuses longer ones on writes with 42208, and finds none on reads (never 414)', async () => {
    const name = (n: number) => uniqueName('s').padEnd(n, 'x');
    for (const length of [150, 255]) {
      const long = name(length);
      expect((await call(registry, 'POST', `/subjects/${long}/versions`, asBody(schemaV1))).status, `${length} characters`).toBe(200);
      expect((await call(registry, 'GET', `/subjects/${long}/versions`)).body).toEqual([1]);
      expect((await call(registry, 'PUT', `/config/${long}`, { compatibility: 'FULL' })).status).toBe(200);
    }
    for (const [what, path] of [['256 characters', name(256)], ['10,000 characters', name(10_000)], ['a control character', `${uniqueName('ctl')}%01x`]] as const) {
      const written = await call(registry, 'POST', `/subjects/${path}/versions`, asBody(schemaV1));
      expect({ what, status: written.status, errorCode: written.body?.error_code }).toEqual({ what, status: 422, errorCode: 42208 });
      expect(written.body?.message).toMatch(/subject .* is not valid: a subject is 1 to 255 characters without control characters/);
      const config = await call(registry, 'PUT', `/config/${path}`, { compatibility: 'NONE' });
      expect({ what, status: config.status, errorCode: config.body?.error_code }).toEqual({ what, status: 422, errorCode: 42208 });
      const read = await call(registry, 'GET', `/subjects/${path}/versions`);
      expect({ what, status: read.status, errorCode: read.body?.error_code }).toEqual({ what, status: 404, errorCode: 40401 });
    }
  });

  it('answers versions outside 1 .. 2^31-1 with 42202, checked before the subject', async () => {
    for (const version of ['2147483648', '99999999999999999999', '0', '-2', '1.5', 'first']) {
      for (const path of [`/subjects/${subject}/versions/${version}`, `/subjects/${uniqueName('missing')}/versions/${version}`]) {
        const response = await call(registry, 'GET', path);
        expect({ path, status: response.status, errorCode: response.body?.error_code }).toEqual({ path, status: 422, errorCode: 42202 });
      }
    }
    expect((await call(registry, 'DELETE', `/subjects/${subject}/versions/2147483648`)).body?.error_code).toBe(42202);
    expect((await call(registry, 'POST', `/compatibility/subjects/${subject}/versions/2147483648`, asBody(schemaV2))).body?.error_code).toBe(42202);
    expect((await call(registry, 'GET', `/subjects/${subject}/versions/2147483647`)).body?.error_code).toBe(40402);
    expect((await call(registry, 'GET', `/subjects/${subject}/versions/-1`)).body).toMatchObject({ subject, version: 1 });
  });

  it('reads JSON bodies under the media types Confluent accepts, none at all included, and answers any other with 415', async () => {
    const body = JSON.stringify(asBody(schemaV1));
    for (const type of ['application/vnd.schemaregistry.v1+json', 'application/vnd.schemaregistry+json', 'application/json', 'application/json; charset=utf-8', 'application/octet-stream']) {
      expect((await rawCall(registry, 'POST', `/subjects/${subject}`, { 'content-type': type }, body)).status, type).toBe(200);
    }
    expect((await rawCall(registry, 'POST', `/subjects/${subject}`, {}, body)).status, 'no Content-Type').toBe(200);
    for (const type of ['text/plain', 'application/xml', 'multipart/form-data; boundary=x', 'application/x-www-form-urlencoded']) {
      const response = await rawCall(registry, 'POST', `/subjects/${subject}/versions`, { 'content-type': type }, body);
      expect({ type, status: response.status, errorCode: response.body?.error_code }).toEqual({ type, status: 415, errorCode: 415 });
      expect(response.body?.message).toMatch(/^HTTP 415 Unsupported Media Type/);
    }
    const malformed = await call(registry, 'POST', `/subjects/${subject}/versions`, '{"schema": ');
    expect({ status: malformed.status, errorCode: malformed.body?.error_code }).toEqual({ status: 400, errorCode: 400 });
  });

  it('answers unknown routes and methods with a Confluent-shaped 404', async () => {
    for (const [method, path] of [['GET', '/no/such/route'], ['GET', '/subjects/x/versions/1/schema/extra'], ['PATCH', '/subjects'], ['POST', '/schemas/ids/1']]) {
      const response = await call(registry, method!, path!, method === 'POST' ? {} : undefined);
      expect({ method, path, status: response.status, body: response.body }).toEqual({ method, path, status: 404, body: { error_code: 404, message: 'HTTP 404 Not Found' } });
    }
  });

  it('refuses a schema over the schema topic message limit with 42209, not 500, and goes on working', async () => {
    const big = uniqueName('big-value');
    const huge = asBody(schemaOfSize('Huge', 2 * 1024 * 1024));
    expect(JSON.stringify(huge).length).toBeGreaterThan(2 * 1024 * 1024);
    const tooLarge = await call(registry, 'POST', `/subjects/${big}/versions`, huge);
    expect({ status: tooLarge.status, errorCode: tooLarge.body?.error_code }).toEqual({ status: 422, errorCode: 42209 });
    expect(tooLarge.body?.message).toMatch(/^Register operation failed because schema is too large: its record would be \d+ bytes; the schema topic \S+ takes records of at most 1048588 bytes/);
    // A body over the request limit is refused unread, with the same code.
    const overBody = await call(registry, 'POST', `/subjects/${big}/versions`, asBody(schemaOfSize('Huger', 5 * 1024 * 1024)));
    expect({ status: overBody.status, errorCode: overBody.body?.error_code }).toEqual({ status: 422, errorCode: 42209 });
    // Nothing was stored, and a large schema that fits is taken.
    expect((await call(registry, 'GET', `/subjects/${big}/versions`)).body?.error_code).toBe(40401);
    const fits = await call(registry, 'POST', `/subjects/${big}/versions`, asBody(schemaOfSize('Large', 900 * 1024)));
    expect(fits.status, JSON.stringify(fits.body).slice(0, 300)).toBe(200);
    expect((await call(registry, 'GET', `/subjects/${big}/versions`)).body).toEqual([1]);
  });
});

describe('a restarted registry', () => {
  it('serves the same ids, versions and configs from its topic, and never reuses an id', async () => {
    const topic = uniqueName('_schemas');
    const brokers = stackEndpoints().kafkaBrokers;
    const subjects = [uniqueName('s1-value'), uniqueName('s2-value')];
    let registry = await startRegistry({ brokers, topic, logger });
    const before: Record<string, unknown>[] = [];
    try {
      for (const subject of subjects) {
        await call(registry, 'POST', `/subjects/${subject}/versions`, asBody(schemaV1));
        await call(registry, 'POST', `/subjects/${subject}/versions`, asBody(schemaV2));
      }
      await call(registry, 'PUT', `/config/${subjects[1]}`, { compatibility: 'FULL' });
      await call(registry, 'PUT', '/config', { compatibility: 'FORWARD' });
      for (const subject of subjects) for (const v of [1, 2]) before.push((await call(registry, 'GET', `/subjects/${subject}/versions/${v}`)).body!);
    } finally {
      await registry.close();
    }

    registry = await startRegistry({ brokers, topic, logger });
    try {
      const after: Record<string, unknown>[] = [];
      for (const subject of subjects) for (const v of [1, 2]) after.push((await call(registry, 'GET', `/subjects/${subject}/versions/${v}`)).body!);
      expect(after).toEqual(before);
      expect((await call(registry, 'GET', `/config/${subjects[1]}`)).body).toEqual({ compatibilityLevel: 'FULL' });
      expect((await call(registry, 'GET', '/config')).body).toEqual({ compatibilityLevel: 'FORWARD' });
      const fresh = await call(registry, 'POST', `/subjects/${uniqueName('s3-value')}/versions`, asBody({ type: 'record', name: 'Brand', fields: [{ name: 'x', type: 'int' }] }));
      const known = new Set(before.map((b) => b.id));
      expect(known.has(fresh.body!.id)).toBe(false);
      expect(fresh.body!.id as number).toBeGreaterThan(Math.max(...[...known].map(Number)));
    } finally {
      await registry.close();
    }
  });
});
