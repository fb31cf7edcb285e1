import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { RegistryError } from './registryErrors.ts';
import type { RegistryService } from './registryService.ts';

/** Confluent's REST paths and JSON shapes over a RegistryService. */
const CONTENT_TYPE = 'application/vnd.schemaregistry.v1+json';
/**
 * The request bodies Confluent's registry reads as JSON (its resources' @Consumes): its two
 * media types, plain JSON, and application/octet-stream, which is also what a request
 * without a Content-Type counts as. Anything else is 415.
 */
const ACCEPTED_REQUEST_TYPES = new Set([CONTENT_TYPE, 'application/vnd.schemaregistry+json', 'application/json', 'application/octet-stream', '']);
export const MAX_SUBJECT_LENGTH = 255;

type Params = { subject?: string; version?: string; id?: string };
type Query = { deleted?: string; defaultToGlobal?: string; verbose?: string; permanent?: string };
type Req = FastifyRequest<{ Params: Params; Querystring: Query; Body: unknown }>;

/** Confluent's wording for errors of the HTTP layer (its Jersey/Jetty answers). */
const HTTP_REASONS: Record<number, string> = { 400: 'Bad Request', 404: 'Not Found', 405: 'Method Not Allowed', 413: 'Payload Too Large', 414: 'URI Too Long', 415: 'Unsupported Media Type' };

/** A Confluent-shaped body for an error of the HTTP layer: `{error_code: <status>, message}`. */
export function httpError(status: number, detail?: string): { error_code: number; message: string } {
  return { error_code: status, message: `HTTP ${status} ${HTTP_REASONS[status] ?? 'Error'}${detail ? `: ${detail}` : ''}` };
}

export function registerRoutes(app: FastifyInstance, registry: RegistryService): void {
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'string' }, (request, body, done) => {
    const type = (request.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
    if (!ACCEPTED_REQUEST_TYPES.has(type)) {
      done(Object.assign(new Error(`Content-Type '${type}' is not accepted; send ${CONTENT_TYPE} (or application/json)`), { statusCode: 415 }), undefined);
      return;
    }
    if (body === '') return done(null, undefined);
    try {
      done(null, JSON.parse(body as string));
    } catch (err) {
      done(Object.assign(new Error(`the request body is not JSON: ${(err as Error).message}`), { statusCode: 400 }), undefined);
    }
  });
  app.addHook('onSend', async (_req, reply, payload) => {
    reply.header('content-type', CONTENT_TYPE);
    return payload;
  });
  app.setNotFoundHandler((_req, reply) => reply.status(404).send(httpError(404)));
  app.setErrorHandler((err: unknown, req, reply) => {
    if (err instanceof RegistryError) return reply.status(err.status).send(err.toBody());
    const e = err as Partial<FastifyError>;
    if (e.code === 'FST_ERR_CTP_BODY_TOO_LARGE' && req.method === 'POST') {
      // Every POST carries a schema: too big a body is a schema too large for the registry (Confluent: 42209).
      const tooLarge = new RegistryError('SCHEMA_TOO_LARGE', `Register operation failed because schema is too large: the request body is over ${app.initialConfig.bodyLimit} bytes`);
      return reply.status(tooLarge.status).send(tooLarge.toBody());
    }
    if (e.statusCode && e.statusCode >= 400 && e.statusCode < 500) return reply.status(e.statusCode).send(httpError(e.statusCode, e.message));
    app.log.error({ err }, 'registry request failed');
    return reply.status(500).send({ error_code: 50001, message: `Error in the backend data store: ${e.message ?? String(err)}` });
  });

  app.get('/', async () => ({}));
  app.get('/subjects', async (req: Req) => registry.subjects(flag(req.query.deleted)));
  app.get('/subjects/:subject/versions', async (req: Req) => registry.versionNumbers(subjectOf(req), flag(req.query.deleted)));
  app.post('/subjects/:subject/versions', async (req: Req) => registry.register(subjectToWrite(req), field(req.body, 'schema'), field(req.body, 'schemaType')));
  app.get('/subjects/:subject/versions/:version', async (req: Req) => registry.getVersion(subjectOf(req), req.params.version ?? '', flag(req.query.deleted)));
  app.get('/subjects/:subject/versions/:version/schema', async (req: Req, reply: FastifyReply) =>
    reply.type(CONTENT_TYPE).send(registry.getVersion(subjectOf(req), req.params.version ?? '').schema),
  );
  app.post('/subjects/:subject', async (req: Req) => registry.lookup(subjectOf(req), field(req.body, 'schema'), field(req.body, 'schemaType')));
  app.delete('/subjects/:subject', async (req: Req) => {
    refusePermanent(req);
    return registry.deleteSubject(subjectOf(req));
  });
  app.delete('/subjects/:subject/versions/:version', async (req: Req) => {
    refusePermanent(req);
    return registry.deleteVersion(subjectOf(req), req.params.version ?? '');
  });
  app.get('/schemas/ids/:id', async (req: Req) => registry.schemaById(req.params.id ?? ''));
  app.get('/schemas/ids/:id/versions', async (req: Req) => registry.subjectVersionsOfId(req.params.id ?? ''));
  app.get('/schemas/types', async () => ['AVRO']);

  const compatibility = async (req: Req) => {
    const result = registry.checkCompatibility(subjectOf(req), req.params.version, field(req.body, 'schema'), field(req.body, 'schemaType'));
    return flag(req.query.verbose) ? { is_compatible: result.compatible, messages: result.messages } : { is_compatible: result.compatible };
  };
  app.post('/compatibility/subjects/:subject/versions/:version', compatibility);
  app.post('/compatibility/subjects/:subject/versions', compatibility);

  app.get('/config', async () => registry.getConfig(undefined, true));
  app.put('/config', async (req: Req) => registry.setConfig(undefined, field(req.body, 'compatibility')));
  app.get('/config/:subject', async (req: Req) => registry.getConfig(subjectOf(req), flag(req.query.defaultToGlobal)));
  app.put('/config/:subject', async (req: Req) => registry.setConfig(subjectToWrite(req), field(req.body, 'compatibility')));
}

/** A subject to look up: any name; one that was never registered is simply not found (40401). */
function subjectOf(req: Req): string {
  return req.params.subject ?? '';
}

/**
 * A subject to write: 1 to 255 characters without control characters, as Confluent's
 * registry accepts them; anything else is 42208.
 */
function subjectToWrite(req: Req): string {
  const subject = subjectOf(req);
  if (subject.trim() === '' || subject.length > MAX_SUBJECT_LENGTH || /[\u0000-\u001f\u007f-\u009f]/.test(subject)) {
    const shown = subject.length > 64 ? `${subject.slice(0, 64)}…` : subject;
    throw new RegistryError('INVALID_SUBJECT', `The specified subject '${shown.replace(/[\u0000-\u001f\u007f-\u009f]/g, '?')}' is not valid: a subject is 1 to ${MAX_SUBJECT_LENGTH} characters without control characters (this one has ${subject.length})`);
  }
  return subject;
}

function field(body: unknown, name: string): unknown {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new RegistryError(name === 'compatibility' ? 'INVALID_COMPATIBILITY_LEVEL' : 'INVALID_SCHEMA', `the request body must be a JSON object with "${name}"`);
  }
  return (body as Record<string, unknown>)[name];
}

function flag(value: string | undefined): boolean {
  return value === 'true';
}

function refusePermanent(req: Req): void {
  if (flag(req.query.permanent)) throw new RegistryError('INVALID_REQUEST', 'permanent (hard) deletion is not supported by this registry; soft deletion keeps ids stable');
}
