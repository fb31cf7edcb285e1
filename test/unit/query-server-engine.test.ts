import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { analystQuerySettings, DEFAULT_QUERY_LIMITS } from '../../services/cli/query/analystSettings.ts';
import { openServerReadOnly } from '../../services/cli/query/readOnlyEngine.ts';
import { assertReadOnly } from '../../services/cli/query/runAnalystQuery.ts';
import { loadConfig } from '../../services/common/config.ts';
import { isPipelineError } from '../../services/common/errors.ts';

// The server side of expctl query against a stand-in HTTP endpoint: what it sends (the user,
// the limits with every query) and what it refuses (a user that is not read-only). The
// statement check and the engine's limits are tested on the real engine in
// test/integration/cli-query.test.ts.

interface Seen { user: string | undefined; settings: URLSearchParams; body: string }

let close: (() => void) | undefined;
afterEach(() => close?.());

async function standIn(answer: (body: string) => string): Promise<{ url: string; seen: Seen[] }> {
  const seen: Seen[] = [];
  const server = createServer(async (req: IncomingMessage, res) => {
    let body = '';
    for await (const chunk of req) body += String(chunk);
    const auth = Buffer.from((req.headers.authorization ?? '').replace(/^Basic /, ''), 'base64').toString();
    seen.push({ user: auth.split(':')[0], settings: new URL(req.url ?? '/', 'http://x').searchParams, body });
    res.end(answer(body));
  });
  await new Promise<void>((listening) => server.listen(0, '127.0.0.1', listening));
  close = () => server.close();
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen };
}

const login = (url: string) => ({ url, username: 'expstream_analyst', password: 'pw', database: 'expstream' });

describe('expctl query on a server', () => {
  it('connects as the query user and sends the limits with every request', async () => {
    const { url, seen } = await standIn(() => '{"readonly":"1"}\n');
    const engine = openServerReadOnly(login(url), analystQuerySettings(DEFAULT_QUERY_LIMITS), 40_000);
    const clickhouse = loadConfig({ env: { CLICKHOUSE_URL: url, CLICKHOUSE_QUERY_USER: 'expstream_analyst' } }).clickhouse;
    await assertReadOnly(engine, clickhouse);
    await engine.close();
    expect(seen).toHaveLength(1);
    expect(seen[0]!.user).toBe('expstream_analyst');
    expect(seen[0]!.settings.get('database')).toBe('expstream');
    for (const [name, value] of Object.entries(analystQuerySettings(DEFAULT_QUERY_LIMITS))) expect(seen[0]!.settings.get(name), name).toBe(String(value));
    expect(seen[0]!.settings.has('readonly')).toBe(false); // the user's profile decides it; assertReadOnly checks it
  });

  it('refuses to run anything as a user that is not read-only', async () => {
    for (const readonly of ['0', '2']) {
      const { url } = await standIn(() => `{"readonly":"${readonly}"}\n`);
      const engine = openServerReadOnly(login(url), {}, 10_000);
      const clickhouse = loadConfig({ env: { CLICKHOUSE_URL: url, CLICKHOUSE_QUERY_USER: 'expstream_analyst' } }).clickhouse;
      const err = await assertReadOnly(engine, clickhouse).then(() => undefined, (e: unknown) => e);
      await engine.close();
      close?.();
      expect(isPipelineError(err, 'INPUT_INVALID')).toBe(true);
      expect((err as Error).message).toBe(`user expstream_analyst on ${url} is not read-only (readonly = ${readonly}); expctl query needs readonly = 1 (infra/clickhouse/readonly-user.sql)`);
    }
  });

  it('reads EXPLAIN output in the server default format, unescaping it', async () => {
    const { url, seen } = await standIn(() => 'Expression ((Project names))\nFilter\\t(x = \\\'a\\\\b\\\')\n');
    const engine = openServerReadOnly(login(url), {}, 10_000);
    expect(await engine.explainRows('EXPLAIN SELECT 1')).toEqual([{ explain: 'Expression ((Project names))' }, { explain: "Filter\t(x = 'a\\b')" }]);
    await engine.close();
    expect(seen[0]!.body).toBe('EXPLAIN SELECT 1'); // no FORMAT appended: after EXPLAIN it would bind to the explained query
  });
});
