import { ClickHouseLogLevel, createClient } from '@clickhouse/client';
import { Session } from 'chdb';
import { quoteIdentifier } from '../../common/clickhouse.ts';
import type { SettingValue } from './analystSettings.ts';

/**
 * A ClickHouse connection that can only read: the embedded engine opened with
 * `readonly = 1` and its limits given at connect time (no SET statement can change either
 * afterwards), or a server reached as the dedicated read-only user.
 */
export interface ReadOnlyEngine {
  readonly kind: 'chdb' | 'server';
  /** The rows of one statement as JSON objects; `params` are bound by the engine (`{name:String}`). */
  rows(sql: string, params?: Record<string, string>): Promise<Row[]>;
  /** The rows of an EXPLAIN statement (one `explain` column), which takes no FORMAT of its own. */
  explainRows(sql: string): Promise<Row[]>;
  close(): Promise<void>;
}

export type Row = Record<string, unknown>;

/**
 * The embedded engine on `dataDir` (undefined: a throw-away directory), read-only from its
 * first statement. Several of these may share one data directory in a process.
 */
export async function openEmbeddedReadOnly(dataDir: string | undefined, settings: Record<string, SettingValue>, database?: string): Promise<ReadOnlyEngine> {
  const connectionArgs = ['--readonly=1', ...Object.entries(settings).map(([name, value]) => `--${name}=${value}`)];
  const session = new Session(dataDir ?? '', { connectionArgs });
  const rows = async (sql: string, params?: Record<string, string>): Promise<Row[]> => {
    const result = params ? await session.queryBindAsync(sql, params, { format: 'JSONEachRow' }) : await session.queryAsync(sql, { format: 'JSONEachRow' });
    return parseJsonLines(result.text());
  };
  try {
    if (database !== undefined) await session.queryAsync(`USE ${quoteIdentifier(database)}`);
  } catch (err) {
    session.close();
    throw err;
  }
  return {
    kind: 'chdb',
    rows,
    explainRows: (sql) => rows(sql),
    close: async () => session.close(),
  };
}

export interface ServerLogin {
  url: string;
  username: string;
  password: string;
  database: string;
}

/** A ClickHouse server as `login`; `settings` go with every request (the user's profile bounds them). */
export function openServerReadOnly(login: ServerLogin, settings: Record<string, SettingValue>, requestTimeoutMs: number): ReadOnlyEngine {
  // Failures reach the caller as errors; the client's own logging would print them a second time.
  const client = createClient({ url: login.url, username: login.username, password: login.password, database: login.database, clickhouse_settings: settings, request_timeout: requestTimeoutMs, log: { level: ClickHouseLogLevel.OFF } });
  return {
    kind: 'server',
    rows: async (sql, params) => {
      const result = await client.query({ query: sql, format: 'JSONEachRow', ...(params ? { query_params: params } : {}) });
      return result.json<Row>();
    },
    // A FORMAT clause after EXPLAIN binds to the explained query, so the server answers in
    // its default format (TabSeparated) and the lines are unescaped here.
    explainRows: async (sql) => {
      const result = await client.exec({ query: sql });
      let text = '';
      for await (const chunk of result.stream) text += typeof chunk === 'string' ? chunk : Buffer.from(chunk as Uint8Array).toString('utf8');
      const lines = text === '' ? [] : text.replace(/\n$/, '').split('\n');
      return lines.map((line) => ({ explain: unescapeTabSeparated(line) }));
    },
    close: () => client.close(),
  };
}

function parseJsonLines(text: string): Row[] {
  return text.split('\n').filter((line) => line.trim() !== '').map((line) => JSON.parse(line) as Row);
}

const TSV_ESCAPES: Record<string, string> = { n: '\n', t: '\t', r: '\r', b: '\b', f: '\f', '0': '\0', '\\': '\\', "'": "'" };

function unescapeTabSeparated(field: string): string {
  return field.replace(/\\(.)/g, (whole, ch: string) => TSV_ESCAPES[ch] ?? whole);
}
