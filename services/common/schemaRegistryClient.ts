import { setTimeout as sleep } from 'node:timers/promises';
import { PipelineError, errorMessage } from './errors.ts';

/**
 * A small client for the Confluent REST API. Unlike a generic client it tells "not found"
 * (an answer: the record is at fault) from "unavailable" (the registry is at fault, so the
 * caller must retry and never dead-letter a good record because of it).
 */
const CONTENT_TYPE = 'application/vnd.schemaregistry.v1+json';

export interface RegistryClientOptions {
  timeoutMs?: number;
  /** Attempts for network errors and 5xx answers, with exponential backoff. */
  attempts?: number;
}

export class SchemaRegistryClient {
  private readonly timeoutMs: number;
  private readonly attempts: number;

  constructor(
    readonly baseUrl: string,
    options: RegistryClientOptions = {},
  ) {
    this.timeoutMs = options.timeoutMs ?? 5_000;
    this.attempts = options.attempts ?? 5;
  }

  async register(subject: string, schema: string): Promise<number> {
    const body = await this.request('POST', `/subjects/${encodeURIComponent(subject)}/versions`, { schema });
    if (body.status !== 200) throw rejected(`registering a schema under ${subject}`, body);
    return (body.json as { id: number }).id;
  }

  /** The schema text, or undefined when the registry has no schema with this id. */
  async schemaById(id: number): Promise<string | undefined> {
    const body = await this.request('GET', `/schemas/ids/${id}`);
    if (body.status === 404) return undefined;
    if (body.status !== 200) throw rejected(`fetching schema ${id}`, body);
    return (body.json as { schema: string }).schema;
  }

  /** Subjects (and versions) that use the schema id; undefined when the id is unknown. */
  async subjectsOfId(id: number): Promise<{ subject: string; version: number }[] | undefined> {
    const body = await this.request('GET', `/schemas/ids/${id}/versions`);
    if (body.status === 404) return undefined;
    if (body.status !== 200) throw rejected(`fetching the subjects of schema ${id}`, body);
    return body.json as { subject: string; version: number }[];
  }

  private async request(method: string, path: string, payload?: unknown): Promise<{ status: number; json: unknown }> {
    let lastProblem = '';
    for (let attempt = 1; attempt <= this.attempts; attempt++) {
      try {
        const response = await fetch(`${this.baseUrl}${path}`, {
          method,
          headers: { accept: CONTENT_TYPE, ...(payload === undefined ? {} : { 'content-type': CONTENT_TYPE }) },
          ...(payload === undefined ? {} : { body: JSON.stringify(payload) }),
          signal: AbortSignal.timeout(this.timeoutMs),
        });
        const text = await response.text();
        if (response.status < 500) return { status: response.status, json: text ? (JSON.parse(text) as unknown) : undefined };
        lastProblem = `HTTP ${response.status}: ${text.slice(0, 200)}`;
      } catch (err) {
        lastProblem = errorMessage(err);
      }
      if (attempt < this.attempts) await sleep(Math.min(2_000, 100 * 2 ** (attempt - 1)));
    }
    throw new PipelineError('REGISTRY_UNAVAILABLE', `schema registry at ${this.baseUrl} unavailable for ${method} ${path} after ${this.attempts} attempts: ${lastProblem}`, { retriable: true });
  }
}

function rejected(what: string, body: { status: number; json: unknown }): PipelineError {
  const message = (body.json as { message?: string } | undefined)?.message ?? JSON.stringify(body.json);
  return new PipelineError('REGISTRY_REJECTED', `the schema registry refused ${what}: HTTP ${body.status}: ${message}`);
}
