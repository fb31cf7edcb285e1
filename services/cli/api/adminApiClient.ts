import { readFileSync } from 'node:fs';
import type { Config } from '../../common/config.ts';
import { PipelineError, errorMessage } from '../../common/errors.ts';

/**
 * How expctl talks to the admin API: the base URL from --api, $EXPCTL_API_URL or the
 * config's control.apiHost/apiPort; the caller's token from --token-file or $EXPCTL_TOKEN
 * (never a flag: flags show in `ps`), sent as a bearer token and never printed.
 */
export interface ApiAccess {
  api?: string;
  tokenFile?: string;
}

/** A response body is at most this big (a results page of a large experiment is far below). */
const MAX_BODY_BYTES = 8 * 1024 * 1024;

export function adminApiTarget(options: ApiAccess, config: Config): { base: string; token: string } {
  const token = options.tokenFile ? readToken(options.tokenFile) : process.env.EXPCTL_TOKEN;
  if (!token) throw new PipelineError('INPUT_INVALID', 'no API token: set EXPCTL_TOKEN or pass --token-file');
  const base = options.api ?? process.env.EXPCTL_API_URL ?? `http://${config.control.apiHost}:${config.control.apiPort}`;
  if (!URL.canParse(base) || !/^https?:$/.test(new URL(base).protocol)) throw new PipelineError('INPUT_INVALID', `--api: '${base}' is not an http(s) URL`);
  return { base, token };
}

export async function getFromAdminApi<T>(target: { base: string; token: string }, path: string): Promise<T> {
  let response: Response;
  try {
    response = await fetch(new URL(path, target.base), { headers: { authorization: `Bearer ${target.token}` }, signal: AbortSignal.timeout(30_000) });
  } catch (err) {
    throw new PipelineError('INPUT_INVALID', `cannot reach the admin API at ${target.base}: ${errorMessage(err)}; is the control service running?`);
  }
  const declared = Number(response.headers.get('content-length') ?? '0');
  if (declared > MAX_BODY_BYTES) {
    await response.body?.cancel();
    throw new PipelineError('INPUT_INVALID', `the admin API's answer to ${path} is over ${MAX_BODY_BYTES} bytes`);
  }
  const text = await response.text();
  if (text.length > MAX_BODY_BYTES) throw new PipelineError('INPUT_INVALID', `the admin API's answer to ${path} is over ${MAX_BODY_BYTES} bytes`);
  let body: Record<string, unknown>;
  try {
    body = JSON.parse(text) as Record<string, unknown>;
  } catch {
    throw new PipelineError('INPUT_INVALID', `the admin API answered ${path} with ${response.status} and no JSON`);
  }
  if (response.status !== 200) throw new PipelineError('INPUT_INVALID', `the admin API refused ${path}: ${response.status} ${String(body.error ?? '')}: ${String(body.message ?? '')}`);
  return body as T;
}

export function readToken(file: string): string {
  try {
    return readFileSync(file, 'utf8').trim();
  } catch (err) {
    throw new PipelineError('INPUT_INVALID', `--token-file: ${errorMessage(err)}`);
  }
}
