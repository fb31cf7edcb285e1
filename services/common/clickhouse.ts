import { mkdirSync } from 'node:fs';
import { createClient, type ClickHouseClient } from '@clickhouse/client';
import { createChdbConnection } from 'chdb/connection';

export type { ClickHouseClient };
type ClientConnection = NonNullable<NonNullable<Parameters<typeof createClient>[0]>['connection']>;

export interface ClickHouseOptions {
  /** A ClickHouse server's HTTP endpoint. Absent: the in-process chDB engine on `dataDir`. */
  url?: string;
  username: string;
  password: string;
  database: string;
  /** chDB data directory; only one process (and one path per process) may hold it. */
  dataDir: string;
}

export interface ClickHouseHandle {
  client: ClickHouseClient;
  /** 'server' talks HTTP to CLICKHOUSE_URL; 'chdb' runs the engine in this process. */
  kind: 'server' | 'chdb';
  database: string;
  close(): Promise<void>;
}

/**
 * The one way the project opens ClickHouse. Both kinds end up with `database` created and
 * selected, so callers write unqualified table names and the same SQL runs on either.
 */
/**
 * Settings both kinds share, so results look the same whichever answers: 64-bit integers
 * come back as JSON strings (the server's default, chDB's is numbers; numbers past 2^53
 * would silently lose precision in JavaScript).
 */
const COMMON_SETTINGS = { output_format_json_quote_64bit_integers: 1 } as const;

export async function openClickHouse(options: ClickHouseOptions): Promise<ClickHouseHandle> {
  const db = quoteIdentifier(options.database);
  if (options.url) {
    const bootstrap = createClient({ url: options.url, username: options.username, password: options.password });
    try {
      await bootstrap.command({ query: `CREATE DATABASE IF NOT EXISTS ${db}` });
    } finally {
      await bootstrap.close();
    }
    const client = createClient({ url: options.url, username: options.username, password: options.password, database: options.database, clickhouse_settings: COMMON_SETTINGS });
    return { client, kind: 'server', database: options.database, close: () => client.close() };
  }
  mkdirSync(options.dataDir, { recursive: true });
  // chdb types its connection against @clickhouse/client-common, which the client now bundles
  // as its own copy of the same interface; the shapes agree, the declarations are distinct.
  const connection = createChdbConnection({ path: options.dataDir }) as unknown as ClientConnection;
  const client = createClient({ connection, clickhouse_settings: COMMON_SETTINGS });
  // chDB ignores the client's `database` option, but its session keeps a USE.
  await client.command({ query: `CREATE DATABASE IF NOT EXISTS ${db}` });
  await client.command({ query: `USE ${db}` });
  return { client, kind: 'chdb', database: options.database, close: () => client.close() };
}

/** Backquoted identifier; the config schema already limits names to [A-Za-z0-9_]. */
export function quoteIdentifier(name: string): string {
  return '`' + name.replaceAll('\\', '\\\\').replaceAll('`', '\\`') + '`';
}
