import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { RegistryError } from './registryErrors.ts';
import type { RegistryService } from './registryService.ts';

/** Confluent's REST paths and JSON shapes over a RegistryService. */
const CONTENT_TYPE = 'application/vnd.schemaregistry.v1+json';
const MAX_SUBJECT_LENGTH = 255;

type Params = { subject?: string; version?: string; id?: string };
type Query = { deleted?: string; defaultToGlobal?: string; verbose?: string; permanent?: string };
type Req = FastifyRequest<{ Params: Params; Querystring: Query; Body: unknown }>;

export function registerRoutes(app: FastifyInstance, registry: RegistryService): void {
  for (const type of [CONTENT_TYPE, 'application/vnd.schemaregistry+json']) {
    app.addContentTypeParser(type, { parseAs: 'string' }, app.getDefaultJsonParser('error', 'ignore'));
  }
  app.addHook('onSend', async (_req, reply, payload) => {
    reply.header('content-type', CONTENT_TYPE);
    return payload;
  });
  app.setErrorHandler((err: unknown, _req, reply) => {
    if (err instanceof RegistryError) return reply.status(err.status).send(err.toBody());
    const e = err as { statusCode?: number; message?: string };
    if (e.statusCode && e.statusCode < 500) return reply.status(e.statusCode === 415 ? 415 : 400).send({ error_code: e.statusCode, message: e.message ?? 'bad request' });
    app.log.error({ err }, 'registry request failed');
    return reply.status(500).send({ error_code: 50001, message: `Error in the backend data store: ${e.message ?? String(err)}` });
  });

  app.get('/', async () => ({}));
  app.get('/subjects', async (req: Req) => registry.subjects(flag(req.query.deleted)));
  app.get('/subjects/:subject/versions', async (req: Req) => registry.versionNumbers(subjectOf(req), flag(req.query.deleted)));
  app.post('/subjects/:subject/versions', async (req: Req) => registry.register(subjectOf(req), field(req.body, 'schema'), field(req.body, 'schemaType')));
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
  app.put('/config/:subject', async (req: Req) => registry.setConfig(subjectOf(req), field(req.body, 'compatibility')));
}

function subjectOf(req: Req): string {
  const subject = req.params.subject ?? '';
  if (subject.trim() === '' || subject.length > MAX_SUBJECT_LENGTH || /[\u0000-\u001f]/.test(subject)) {
    throw new RegistryError('INVALID_REQUEST', `invalid subject name: it must be 1 to ${MAX_SUBJECT_LENGTH} printable characters`);
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
