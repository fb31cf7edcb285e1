import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runExpctl } from '../support/childService.ts';
import { DEFAULT_QUERY_LIMITS, analystQuerySettings, type QueryLimits } from '../../services/cli/query/analystSettings.ts';
import { createQueryInspector, MAX_QUERY_CHARS, type QueryInspector } from '../../services/cli/query/inspectQuery.ts';
import { openEmbeddedReadOnly, type ReadOnlyEngine } from '../../services/cli/query/readOnlyEngine.ts';
import { runAnalystQuery } from '../../services/cli/query/runAnalystQuery.ts';
import { openClickHouse } from '../../services/common/clickhouse.ts';
import { loadConfig, type Config } from '../../services/common/config.ts';
import { isPipelineError } from '../../services/common/errors.ts';
import { applyMigrations } from '../../services/common/migrations.ts';
import { stackEndpoints } from '../support/stack.ts';

/**
 * Attacks on `expctl query` against the real engine (chDB on a store with the migrations
 * applied, a second database holding a secret, secret files beside it): the attacks
 * through the CLI itself, then each attack's class statement by statement (every table
 * function and every outward-reaching function this engine lists, every system table, every
 * kind of statement that is not a read), the engine's own limits, and the engine's read-only
 * mode underneath the check.
 */

const ROOT = resolve(import.meta.dirname, '../..');
const DATABASE = 'expstream';
const SECRET_ROW = 'secret-row-3b1f';
const SECRET_KEY = 'PRIVATE-KEY-9d2c';
const onServer = Boolean(stackEndpoints().clickhouseUrl); // these tests prepare a chDB store of their own

let dataDir: string;
let secrets: string;
let clickhouse: Config['clickhouse'];
/** Read from the engine with full rights, so each class is whatever this engine has. */
const engine = { systemTables: [] as string[], tableFunctions: [] as string[], reachingFunctions: [] as string[], functions: new Set<string>() };

beforeAll(async () => {
  if (onServer) return;
  dataDir = mkdtempSync(join(tmpdir(), 'query-chdb-'));
  secrets = mkdtempSync(join(tmpdir(), 'query-secrets-'));
  writeFileSync(join(secrets, 'admin-api.key'), `-----BEGIN PRIVATE KEY-----\n${SECRET_KEY}\n-----END PRIVATE KEY-----\n`);
  const ch = await openClickHouse({ username: 'default', password: '', database: DATABASE, dataDir });
  try {
    await applyMigrations(ch.client, resolve(ROOT, 'infra/clickhouse/migrations'));
    const delta = (variant: string, metric: string, users: number, sum: number, sumSquares: number, offset: number) => ({
      experiment_id: 'exp', variant_id: variant, metric, exposed_users: metric === '' ? users : 0, conflicts: 0, sum, sum_squares: sumSquares, conversions: 0, events: metric === '' ? 0 : users,
      definition_version: 1, emitted_at: Date.UTC(2026, 10, 25), events_partition: 0, first_offset: offset, last_offset: offset, kafka_topic: 'exp.aggregates', kafka_partition: 0, kafka_offset: offset,
    });
    await ch.client.insert({ table: 'aggregate_deltas', format: 'JSONEachRow', values: [delta('a', '', 4, 0, 0, 1), delta('a', 'revenue', 4, 10, 30, 1), delta('b', '', 2, 0, 0, 2), delta('b', 'revenue', 2, 2, 2, 2)] });
    await ch.client.insert({ table: 'control_commands', format: 'JSONEachRow', values: [{ command_id: 'c1', experiment_id: 'exp', action: 'HALT', reason: 'SRM', evidence: '{"pValue":1e-5}', issuer: 'guardian', issued_at: Date.UTC(2026, 10, 25, 1), nonce: 'n', signature: 's', kafka_topic: 'exp.control', kafka_partition: 0, kafka_offset: 0 }] });
    await ch.client.command({ query: 'CREATE DATABASE other' });
    await ch.client.command({ query: 'CREATE TABLE other.secrets (s String) ENGINE = MergeTree ORDER BY s' });
    await ch.client.command({ query: `INSERT INTO other.secrets VALUES ('${SECRET_ROW}')` });
    const names = async (query: string) => (await (await ch.client.query({ query, format: 'JSONEachRow' })).json<{ name: string }>()).map((r) => r.name);
    engine.systemTables = await names("SELECT name FROM system.tables WHERE database = 'system'");
    engine.tableFunctions = await names('SELECT name FROM system.table_functions');
    engine.functions = new Set(await names('SELECT name FROM system.functions'));
    const outward = "categories IN ('Dictionary', 'Embedded Dictionary', 'AI', 'Introspection')";
    engine.reachingFunctions = await names(`SELECT name FROM system.functions WHERE ${outward} OR alias_to IN (SELECT name FROM system.functions WHERE ${outward})`);
  } finally {
    await ch.close();
  }
  clickhouse = loadConfig({ env: { CHDB_PATH: dataDir } }).clickhouse;
});

/** Analyst queries that must keep working, and their kind: the README's and the demo's among them. */
const ALLOWED: [string, string][] = [
  ["SELECT * FROM experiment_summary WHERE experiment_id = 'checkout-redesign'", 'select'],
  ['SELECT experiment_id, variant_id, metric, users, mean FROM experiment_summary ORDER BY experiment_id, metric, variant_id', 'select'],
  ['SELECT * FROM halts', 'select'],
  ['SELECT e.experiment_id, e.variant_id, h.reason FROM experiment_summary AS e INNER JOIN halts AS h ON e.experiment_id = h.experiment_id LEFT JOIN expstream.exposures AS x ON x.experiment_id = e.experiment_id', 'select'],
  ['WITH totals AS (SELECT experiment_id, sum(users) AS n FROM experiment_summary GROUP BY experiment_id) SELECT * FROM totals WHERE n > (SELECT count() FROM halts)', 'select'],
  ['SELECT experiment_id FROM halts UNION ALL SELECT experiment_id FROM experiment_summary EXCEPT SELECT toString(number) FROM numbers(3)', 'select'],
  ["SELECT variant_id, sumIf(users, metric = ''), countDistinct(metric), quantile(0.5)(mean), row_number() OVER (PARTITION BY experiment_id ORDER BY variant_id) AS rn FROM experiment_summary GROUP BY experiment_id, variant_id, users, metric, mean", 'select'],
  ["SELECT CASE WHEN users > 1 THEN 'many' ELSE 'few' END, arrayMap(x -> x * 2, [1, 2]), format('{}-{}', experiment_id, variant_id), toStartOfDay(now()) FROM experiment_summary", 'select'],
  ['SELECT experiment_id FROM halts WHERE experiment_id IN (SELECT experiment_id FROM experiment_summary) AND experiment_id GLOBAL NOT IN (SELECT toString(number) FROM numbers(3))', 'select'],
  ['SELECT number FROM system.numbers LIMIT 3', 'select'],
  ['SELECT * FROM numbers(3) AS a, numbers_mt(2) AS b, generate_series(1, 3) AS g, generateSeries(1, 2) AS c, values(1, 2) AS v, system.one', 'select'],
  ['SELECT zero FROM system.zeros LIMIT 3', 'select'],
  ['SELECT 1 -- ; DROP TABLE halts', 'select'],
  ['SELECT 1 /* ; DROP TABLE halts */ ;', 'select'],
  ['SELECT\u00a01\u200b', 'select'],
  ['EXPLAIN SELECT * FROM halts', 'explain'],
  ['EXPLAIN PIPELINE SELECT count() FROM exposures', 'explain'],
  ['EXPLAIN AST SELECT 1', 'explain'],
  ['DESCRIBE TABLE halts', 'describe'],
  ['DESCRIBE (SELECT * FROM experiment_summary)', 'describe'],
  ['SHOW TABLES', 'show'],
  ['SHOW TABLES FROM expstream', 'show'],
  ['SHOW DATABASES', 'show'],
  ['SHOW CREATE VIEW halts', 'show'],
  ['SHOW CREATE TABLE expstream.exposures', 'show'],
];

function expctl(args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return runExpctl(['query', ...args], { env: { ...process.env, CHDB_PATH: dataDir, CLICKHOUSE_URL: '', LOG_LEVEL: 'warn' } });
}

const query = (sql: string, limits: Partial<QueryLimits> = {}) => runAnalystQuery(sql, clickhouse, { ...DEFAULT_QUERY_LIMITS, ...limits });

/** The refusal of `sql`, or undefined if the check lets it through. */
async function refusalOf(inspect: QueryInspector, sql: string): Promise<string | undefined> {
  try {
    await inspect(sql);
    return undefined;
  } catch (err) {
    if (isPipelineError(err, 'QUERY_REFUSED')) return err.message;
    throw err;
  }
}

describe.skipIf(onServer)('expctl query through the CLI', () => {
  it("refuses the issue's attacks with exit 2 and the reason: nothing read, appended or requested", async () => {
    const keyFile = join(secrets, 'admin-api.key');
    const appended = join(secrets, 'appended.tsv');
    const pseudonymKey = 'pseudonym-key-77e1a';
    const victim = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { env: { PATH: process.env.PATH, PSEUDONYM_KEY: pseudonymKey }, stdio: 'ignore' });
    const requests: string[] = [];
    const server = createServer((req, res) => {
      requests.push(req.url ?? '');
      res.end('answered\n');
    });
    await new Promise<void>((listening) => server.listen(0, '127.0.0.1', listening));
    const port = (server.address() as AddressInfo).port;
    try {
      const attacks: [string, RegExp][] = [
        [`INSERT INTO FUNCTION file('${appended}', 'TSVRaw') SELECT 'appended'`, /refused: INSERT is not a read/],
        [`SELECT * FROM file('${keyFile}', 'LineAsString')`, /refused: table function file\(\) reads outside the pipeline's database/],
        [`SELECT file('${keyFile}')`, /refused: function file\(\) reads files on the server/],
        [`SELECT * FROM file('/proc/${victim.pid}/environ', 'RawBLOB')`, /refused: table function file\(\)/],
        [`SELECT * FROM url('http://127.0.0.1:${port}/leak', 'LineAsString')`, /refused: table function url\(\)/],
        ['SET max_result_rows = 0; SET max_execution_time = 0; SELECT number FROM system.numbers', /refused: the engine's parser does not accept it as one statement: Syntax error \(Multi-statements are not allowed\)/],
        // The engine's parser is read-only too: a SETTINGS clause that changes a value it has is refused there.
        ['SELECT number FROM system.numbers SETTINGS max_result_rows = 0, max_execution_time = 0', /refused: .*Cannot modify 'max_execution_time' setting in readonly mode/],
      ];
      for (const [sql, reason] of attacks) {
        const run = await expctl([sql]);
        expect(run.status, sql).toBe(2);
        expect(run.stderr, sql).toMatch(/^expctl: refused: [^\n]+\n$/);
        expect(run.stderr, sql).toMatch(reason);
        expect(run.stdout + run.stderr).not.toContain(SECRET_KEY);
        expect(run.stdout + run.stderr).not.toContain(pseudonymKey);
      }
      expect(existsSync(appended)).toBe(false);
      expect(requests).toEqual([]);
      // No memory limit before: now the engine stops the query at the one asked for.
      const memory = await expctl(['SELECT groupArray(number) FROM numbers(1000000000)', '--max-memory', '64']);
      expect(memory.status).toBe(2);
      expect(memory.stderr).toMatch(/^expctl: query failed: .*memory limit exceeded.*\(MEMORY_LIMIT_EXCEEDED\)\n$/i);
      const ceiling = await expctl(['SELECT 1', '--max-rows', '0']);
      expect(ceiling.status).toBe(2);
      expect(ceiling.stderr).toContain('--max-rows must be a positive integer');
    } finally {
      victim.kill();
      server.close();
    }
  }, 240_000);

  it('answers the analyst views as a table or JSON', async () => {
    const summary = await expctl(["SELECT variant_id, users, sum_x, mean, variance FROM experiment_summary WHERE experiment_id = 'exp' AND metric = 'revenue' ORDER BY variant_id", '--json']);
    expect(summary.status, summary.stderr).toBe(0);
    expect(JSON.parse(summary.stdout)).toEqual([
      { variant_id: 'a', users: '4', sum_x: 10, mean: 2.5, variance: (30 - 4 * 2.5 * 2.5) / 3 },
      { variant_id: 'b', users: '2', sum_x: 2, mean: 1, variance: 0 },
    ]);
    const table = await expctl(['SELECT experiment_id, issuer, reason FROM halts']);
    expect(table.status).toBe(0);
    expect(table.stdout).toMatch(/experiment_id\s+issuer\s+reason\n-+\s+-+\s+-+\nexp\s+guardian\s+SRM\n/);
  }, 60_000);
});

describe.skipIf(onServer)("expctl query's check, on the engine's parse", () => {
  let parser: ReadOnlyEngine;
  let inspect: QueryInspector;
  beforeAll(async () => {
    parser = await openEmbeddedReadOnly(dataDir, {});
    inspect = createQueryInspector(parser, DATABASE);
  });
  afterAll(async () => {
    await parser?.close();
  });

  it('lets analyst queries through: joins, WITH, UNION, subqueries, windows, EXPLAIN, DESCRIBE, SHOW and the README examples', async () => {
    for (const [sql, kind] of ALLOWED) {
      await expect(inspect(sql), sql).resolves.toMatchObject({ kind });
    }
    // What runs is the engine's formatting of the statement, comments gone.
    await expect(inspect('SELECT 1 /* ; DROP TABLE halts */ ;')).resolves.toEqual({ canonical: 'SELECT 1', kind: 'select' });
  });

  it('refuses every table function but the generators, in every position a table can be named', async () => {
    const generators = new Set(['numbers', 'numbers_mt', 'generate_series', 'generateSeries', 'values']);
    const reaching = engine.tableFunctions.filter((name) => !generators.has(name));
    expect(reaching).toEqual(expect.arrayContaining(['zeros', 'file', 'url', 's3', 'hdfs', 'executable', 'remote', 'remoteSecure', 'mysql', 'postgresql', 'jdbc', 'odbc', 'input', 'cluster', 'merge', 'dictionary', 'sqlite', 'mongodb', 'redis', 'azureBlobStorage', 'iceberg', 'deltaLake', 'hudi', 's3Cluster', 'urlCluster']));
    let checked = 0;
    for (const name of reaching) {
      for (const spelled of [name, name.toUpperCase(), `\`${name}\``]) {
        const call = `${spelled}('${join(secrets, 'admin-api.key')}')`;
        const positions = [
          `SELECT * FROM ${call}`,
          `SELECT * FROM halts AS h INNER JOIN ${call} AS t ON 1 = 1`,
          `SELECT * FROM (SELECT * FROM halts WHERE 1 IN (SELECT * FROM ${call}))`,
          `WITH t AS (SELECT * FROM ${call}) SELECT * FROM t`,
          `DESCRIBE TABLE ${call}`,
          `EXPLAIN SELECT * FROM ${call}`,
          `INSERT INTO FUNCTION ${call} SELECT 1`,
          ...(engine.functions.has(name) ? [] : [`SELECT 1 WHERE 1 IN ${call}`]),
        ];
        for (const sql of positions) {
          const reason = await refusalOf(inspect, sql);
          expect(reason, sql).toBeDefined();
          // view() and viewIfPermitted() take a query, not a string: the engine's parser refuses those calls.
          const outside = `table function ${name}\\(\\) reads outside the pipeline's database`;
          const expected = new RegExp(name.startsWith('view') ? `${outside}|parser does not accept it` : outside, 'i');
          if (!sql.startsWith('INSERT') && !sql.includes(' IN ')) expect(reason, sql).toMatch(expected);
          checked++;
        }
      }
    }
    expect(checked).toBeGreaterThan(1000);
    for (const sql of ['SELECT * FROM view(SELECT * FROM halts)', "SELECT * FROM viewIfPermitted(SELECT * FROM halts ELSE null('a UInt8'))", "SELECT * FROM viewExplain('EXPLAIN', '', (SELECT 1))", "SELECT * FROM merge('other', '.*')", "SELECT * FROM remote('127.0.0.1', other.secrets)"]) {
      expect(await refusalOf(inspect, sql), sql).toMatch(/^refused: table function (view|viewIfPermitted|viewExplain|merge|remote)\(\) reads outside/);
    }
  }, 240_000);

  it('refuses every function that reaches outside: dictionaries, AI services, introspection, files, Join tables, server configuration, Keeper', async () => {
    expect(engine.reachingFunctions).toEqual(expect.arrayContaining(['dictGet', 'dictGetString', 'dictHas', 'aiGenerate', 'addressToLine', 'regionToName']));
    const others = ['file', 'joinGet', 'joinGetOrNull', 'hasColumnInTable', 'catboostEvaluate', 'getServerSetting', 'getMergeTreeSetting', 'getMacro', 'showCertificate', 'filesystemAvailable', 'filesystemCapacity', 'filesystemUnreserved', 'generateSerialID', 'zookeeperSessionUptime'];
    for (const name of [...engine.reachingFunctions, ...others]) {
      for (const sql of [`SELECT ${name}('x')`, `SELECT experiment_id FROM halts WHERE ${name.toUpperCase()}('x', 'y') = 1`, `SELECT (SELECT \`${name}\`('x'))`]) {
        expect(await refusalOf(inspect, sql), sql).toMatch(new RegExp(`^refused: function ${name}\\(\\) (reads|calls|inspects|loads|writes)`, 'i'));
      }
    }
    // In every clause an expression can stand in, including those evaluated before the query runs.
    const hidden = "length(file('/etc/hostname'))";
    for (const sql of [
      `SELECT sum(1) OVER (ORDER BY 1 ROWS BETWEEN ${hidden} PRECEDING AND CURRENT ROW) FROM numbers(3)`,
      `SELECT number FROM numbers(3) WINDOW w AS (ORDER BY number ROWS BETWEEN ${hidden} PRECEDING AND CURRENT ROW)`,
      `SELECT number FROM numbers(3) ORDER BY number WITH FILL FROM ${hidden} TO 10 STEP 1`,
      `SELECT number AS x FROM numbers(3) ORDER BY x WITH FILL INTERPOLATE (x AS ${hidden})`,
      `SELECT number FROM numbers(3) LIMIT ${hidden}`,
      `SELECT number FROM numbers(3) LIMIT 1 BY ${hidden}`,
      `SELECT * FROM numbers(${hidden})`,
      `SELECT * FROM values('a UInt64', ${hidden})`,
      `SELECT quantile(${hidden})(number) FROM numbers(3)`,
      `SELECT * FROM numbers(3) AS n ARRAY JOIN [${hidden}] AS f`,
      `SELECT * FROM numbers(3) AS a INNER JOIN numbers(3) AS b ON a.number = ${hidden}`,
      `SELECT * EXCEPT (number) REPLACE (${hidden} AS number) FROM numbers(1)`,
      "SELECT arrayMap(x -> file(x), ['/etc/hostname'])",
      `SELECT ${hidden}::String`,
    ]) {
      expect(await refusalOf(inspect, sql), sql).toBe('refused: function file() reads files on the server');
    }
    expect(await refusalOf(inspect, "SELECT * APPLY(x -> file(x)) FROM (SELECT '/etc/hostname' AS p)")).toMatch(/APPLY calls a function the check cannot see/);
    expect(await refusalOf(inspect, 'SELECT noSuchFunction(1)')).toMatch(/not one the engine lists/);
  }, 120_000);

  it('refuses every statement that is not a read, naming it', async () => {
    const statements: [string, RegExp][] = [
      ["INSERT INTO halts SELECT * FROM halts", /^refused: INSERT is not a read/],
      ['INSERT INTO control_commands FORMAT JSONEachRow {"command_id": "x"}', /^refused: INSERT/],
      ['ALTER TABLE exposures DELETE WHERE 1', /^refused: ALTER/],
      ['ALTER TABLE exposures UPDATE variant_id = 1 WHERE 1', /^refused: ALTER/],
      ['DELETE FROM exposures WHERE 1', /^refused: /],
      ['DROP TABLE exposures', /^refused: DROP/],
      ['DROP DATABASE expstream', /^refused: DROP/],
      ['TRUNCATE TABLE exposures', /^refused: TRUNCATE/],
      ['RENAME TABLE exposures TO gone', /^refused: RENAME/],
      ['EXCHANGE TABLES exposures AND metric_events', /^refused: /],
      ['CREATE TABLE t (a UInt8) ENGINE = File(TSV)', /^refused: CREATE/],
      ["CREATE TABLE t ENGINE = URL('http://127.0.0.1:1/') AS SELECT 1", /^refused: CREATE/],
      ['CREATE TEMPORARY TABLE t (a UInt8)', /^refused: CREATE/],
      ['CREATE VIEW v AS SELECT * FROM other.secrets', /^refused: CREATE/],
      ["CREATE DICTIONARY d (a UInt8) PRIMARY KEY a SOURCE(FILE(path '/etc/passwd' format 'TSV')) LAYOUT(FLAT()) LIFETIME(0)", /^refused: CREATE/],
      ['CREATE FUNCTION f AS x -> x', /^refused: CREATE FUNCTION/],
      ['CREATE USER u', /^refused: /],
      ['ATTACH TABLE exposures', /^refused: ATTACH/],
      ['DETACH TABLE exposures', /^refused: DETACH/],
      ['UNDROP TABLE exposures', /^refused: UNDROP/],
      ['OPTIMIZE TABLE exposures FINAL', /^refused: OPTIMIZE/],
      ['SYSTEM FLUSH LOGS', /^refused: SYSTEM/],
      ['SYSTEM SHUTDOWN', /^refused: SYSTEM/],
      ['KILL QUERY WHERE 1', /^refused: KILL/],
      ['GRANT ALL ON *.* TO default', /^refused: GRANT/],
      ['REVOKE SELECT ON expstream.* FROM default', /^refused: /],
      ['SET readonly = 0', /^refused: SET is not a read/],
      ['SET max_result_rows = 0', /^refused: SET is not a read/],
      ['USE other', /^refused: USE/],
      ["BACKUP TABLE exposures TO File('/tmp/b')", /^refused: BACKUP/],
      ['CHECK TABLE exposures', /^refused: CHECK TABLE/],
      ['EXISTS TABLE other.secrets', /^refused: EXISTS/],
      ['BEGIN TRANSACTION', /^refused: /],
      ['SHOW PROCESSLIST', /^refused: SHOW PROCESSLIST/],
      ['SHOW GRANTS', /^refused: SHOW GRANTS/],
      ['SHOW USERS', /^refused: /],
      ['SHOW COLUMNS FROM other.secrets', /^refused: SHOW COLUMNS/],
      ['SHOW CREATE DATABASE other', /^refused: SHOW CREATE DATABASE/],
      ['SHOW CREATE TABLE other.secrets', /^refused: SHOW CREATE of other.secrets reads outside/],
      ['SHOW TABLES FROM other', /^refused: SHOW \.\.\. FROM/],
      ['EXPLAIN TABLE OVERRIDE mysql(\'a\', \'b\', \'c\', \'d\', \'e\') PARTITION BY x', /^refused: EXPLAIN TABLE OVERRIDE/],
      ['EXPLAIN AST INSERT INTO exposures SELECT 1', /^refused: only a SELECT may be explained/],
    ];
    for (const [sql, reason] of statements) expect(await refusalOf(inspect, sql), sql).toMatch(reason);
  });

  it('refuses SET and SETTINGS anywhere, FORMAT and INTO OUTFILE', async () => {
    const outfile = join(secrets, 'outfile.csv');
    const clauses: [string, RegExp][] = [
      // A value the engine's read-only parser already has passes it, and is refused by the check;
      // another value is refused by the parser itself.
      ['SELECT 1 SETTINGS readonly = 1', /SETTINGS clause could change the limits/],
      ['SELECT 1 SETTINGS max_result_rows = 0', /SETTINGS clause could change the limits/],
      ['SELECT 1 SETTINGS max_result_rows = 1000000000', /Cannot modify 'max_result_rows' setting in readonly mode/],
      ['SELECT * FROM (SELECT 1 SETTINGS max_execution_time = 0)', /SETTINGS clause could change the limits/],
      ['WITH t AS (SELECT 1 SETTINGS readonly = 1) SELECT * FROM t', /SETTINGS clause/],
      ['SELECT 1 UNION ALL SELECT 2 SETTINGS readonly = 1', /SETTINGS clause/],
      ['SELECT 1 WHERE 1 IN (SELECT 1 SETTINGS readonly = 1)', /SETTINGS clause/],
      ['EXPLAIN SELECT 1 SETTINGS readonly = 1', /SETTINGS clause/],
      ['EXPLAIN indexes = 1 SELECT * FROM exposures', /EXPLAIN options/],
      ['SELECT 1 FORMAT CSV', /FORMAT clause \(FORMAT CSV\)/],
      ['SHOW TABLES FORMAT JSON', /SHOW \.\.\. FROM \/ FORMAT JSON/],
      ['DESCRIBE TABLE halts FORMAT Native', /FORMAT clause/],
      [`SELECT * FROM halts INTO OUTFILE '${outfile}'`, /INTO OUTFILE writes a file/],
      [`SELECT * FROM halts INTO OUTFILE '${outfile}' TRUNCATE FORMAT CSV`, /INTO OUTFILE writes a file/],
      [`SELECT * FROM halts INTO OUTFILE '${outfile}' AND STDOUT COMPRESSION 'gzip'`, /INTO OUTFILE writes a file/],
      [`EXPLAIN SELECT 1 INTO OUTFILE '${outfile}'`, /INTO OUTFILE|not allowed/],
    ];
    for (const [sql, reason] of clauses) expect(await refusalOf(inspect, sql), sql).toMatch(reason);
    expect(existsSync(outfile)).toBe(false);
  });

  it('takes one statement: several are refused, whether plain or hidden behind quotes and comments', async () => {
    for (const sql of [
      'SELECT 1; SELECT 2',
      'SELECT 1; DROP TABLE halts',
      "SELECT ';'; DROP TABLE halts",
      "SELECT '/*'; DROP TABLE halts; SELECT '*/'",
      'SELECT 1 /* a */; /* b */ DROP TABLE halts',
      'SELECT 1 -- comment\n; DROP TABLE halts',
      'SELECT `a;b` FROM (SELECT 1 AS `a;b`); DROP TABLE halts',
      'SELECT 1\\G',
      'SELECT 1\uff1b DROP TABLE halts',
      "SELECT * FROM fi/**/le('/etc/passwd')",
      "SELECT * FROM \ufb01le('/etc/passwd')",
    ]) {
      expect(await refusalOf(inspect, sql), sql).toMatch(/^refused: the engine's parser does not accept it as one statement: (Unrecognized token: )?Syntax error/);
    }
  });

  it('reads only the pipeline database: other databases and system tables other than one, numbers and zeros are refused', async () => {
    const readable = new Set(['one', 'numbers', 'numbers_mt', 'zeros', 'zeros_mt']);
    const leaking = engine.systemTables.filter((t) => !readable.has(t));
    expect(['processes', 'users', 'tables', 'columns', 'databases', 'settings', 'server_settings', 'certificates', 'clusters'].filter((t) => !leaking.includes(t))).toEqual([]);
    for (const table of leaking) {
      for (const sql of [`SELECT * FROM system.${table}`, `SELECT * FROM \`system\`.\`${table}\``, `SELECT * FROM halts WHERE experiment_id IN (SELECT toString(1) FROM system.${table})`, `SELECT 1 WHERE 'x' IN system.${table}`, `DESCRIBE TABLE system.${table}`]) {
        expect(await refusalOf(inspect, sql), sql).toMatch(/^refused: system table system\.\S+ is not readable by analysts/);
      }
    }
    for (const sql of ['SELECT * FROM other.secrets', 'SELECT * FROM "other"."secrets"', 'SELECT * FROM halts AS h, other.secrets', "SELECT 1 WHERE 'x' IN other.secrets", 'SELECT * FROM INFORMATION_SCHEMA.TABLES', 'SELECT * FROM information_schema.columns', 'DESCRIBE TABLE other.secrets']) {
      expect(await refusalOf(inspect, sql), sql).toMatch(/^refused: table \S+ is outside the pipeline's database \(expstream\)/);
    }
  }, 120_000);

  it('cannot be fooled by quoted names shaped like the syntax tree, and bounds the size of what it parses', async () => {
    const forged = [
      'SELECT 1 AS `x\n    Function numbers (children 1)`',
      "SELECT * FROM `file\n`('/etc/passwd')",
      'SELECT `a (children 1)` FROM (SELECT 1 AS `a (children 1)`)',
      "SELECT * FROM `file (alias x)`('/etc/passwd')",
    ];
    for (const sql of forged) expect(await refusalOf(inspect, sql), sql).toMatch(/^refused: /);
    expect(await refusalOf(inspect, 'SELECT 1 AS `x\ny`')).toMatch(/quoted name `x\\ny` holds a control character/);
    expect(await refusalOf(inspect, `SELECT ${'1 + '.repeat(MAX_QUERY_CHARS / 4)}1`)).toMatch(/characters long; at most 65536/);
    expect(await refusalOf(inspect, `SELECT ${'('.repeat(2000)}1${')'.repeat(2000)}`)).toMatch(/Maximum parse depth/);
    expect(await refusalOf(inspect, '')).toBe('refused: the query is empty');
  });
});

describe.skipIf(onServer)('expctl query on the engine, end to end', () => {
  it('answers analyst queries and shows the limits it runs under', async () => {
    for (const [sql, kind] of ALLOWED) await expect(query(sql), sql).resolves.toMatchObject({ kind });
    const { rows } = await query("SELECT variant_id, users FROM experiment_summary WHERE experiment_id = 'exp' AND metric = 'revenue' ORDER BY variant_id");
    expect(rows).toEqual([{ variant_id: 'a', users: '4' }, { variant_id: 'b', users: '2' }]);
    const explain = await query('EXPLAIN SELECT * FROM halts');
    expect(explain.kind).toBe('explain');
    expect(explain.rows.map((r) => r.explain).join('\n')).toMatch(/Expression|ReadFrom|Filter/);
    expect((await query('SHOW TABLES')).rows.map((r) => r.name)).toEqual(expect.arrayContaining(['exposures', 'experiment_summary', 'halts']));
    expect((await query('DESCRIBE TABLE halts')).rows.map((r) => r.name)).toEqual(['experiment_id', 'issued_at', 'issuer', 'reason', 'evidence', 'command_id']);
    const [limits] = (await query("SELECT getSetting('readonly') AS readonly, getSetting('max_result_rows') AS rows, getSetting('max_execution_time') AS seconds, getSetting('max_memory_usage') AS memory", { maxRows: 7, timeoutSeconds: 9, maxMemoryMiB: 100 })).rows;
    expect(Object.values(limits!).map(Number)).toEqual([1, 7, 9, 100 * 1024 * 1024]);
  });

  it('fails a query past the row, time or memory limit with the engine’s own error, promptly', async () => {
    const failure = async (sql: string, limits: Partial<QueryLimits>) => {
      const started = Date.now();
      const err = await query(sql, limits).then(() => undefined, (e: unknown) => e);
      expect(isPipelineError(err, 'INPUT_INVALID'), sql).toBe(true);
      return { message: (err as Error).message, seconds: (Date.now() - started) / 1000 };
    };
    expect((await failure('SELECT number FROM system.numbers LIMIT 50', { maxRows: 10 })).message).toMatch(/^query failed: Limit for result exceeded, max rows: 10.*\(TOO_MANY_ROWS_OR_BYTES\)$/);
    expect((await failure('SELECT * FROM numbers(20) UNION ALL SELECT * FROM numbers(20)', { maxRows: 30 })).message).toMatch(/TOO_MANY_ROWS_OR_BYTES/);
    const endless = await failure('SELECT count() FROM system.numbers', { timeoutSeconds: 2 });
    expect(endless.message).toMatch(/^query failed: Timeout exceeded: elapsed .* maximum: 2000 ms.*\(TIMEOUT_EXCEEDED\)$/);
    expect(endless.seconds).toBeLessThan(15);
    expect((await failure('SELECT groupArray(number) FROM numbers(1000000000)', { maxMemoryMiB: 64 })).message).toMatch(/^query failed: .*memory limit exceeded.*\(MEMORY_LIMIT_EXCEEDED\)$/i);
    // Nor does a big GROUP BY or sort spill to disk past the limit.
    expect((await failure('SELECT number % 20000000 AS k, count() FROM numbers(40000000) GROUP BY k', { maxMemoryMiB: 64, timeoutSeconds: 60 })).message).toMatch(/MEMORY_LIMIT_EXCEEDED/);
    expect((await failure('SELECT toString(number) AS s FROM numbers(20000000) ORDER BY s LIMIT 1 BY s LIMIT 1', { maxMemoryMiB: 64, timeoutSeconds: 60 })).message).toMatch(/MEMORY_LIMIT_EXCEEDED/);
  }, 180_000);

  it('refuses through the whole path too, before anything runs', async () => {
    for (const sql of [`SELECT * FROM file('${join(secrets, 'admin-api.key')}', 'LineAsString')`, "SELECT * FROM url('http://127.0.0.1:1/', 'LineAsString')", 'SELECT * FROM system.processes', 'SELECT * FROM other.secrets', 'DROP TABLE halts']) {
      const err = await query(sql).then(() => undefined, (e: unknown) => e);
      expect(isPipelineError(err, 'QUERY_REFUSED'), sql).toBe(true);
    }
    expect((await query('SELECT count() AS n FROM halts')).rows).toEqual([{ n: '1' }]);
  });

  it('runs on an engine that is read-only underneath the check: it refuses writes and setting changes itself', async () => {
    const executor = await openEmbeddedReadOnly(dataDir, analystQuerySettings(DEFAULT_QUERY_LIMITS), DATABASE);
    try {
      for (const sql of [
        'INSERT INTO control_commands (command_id) VALUES (\'forged\')',
        'DROP TABLE halts',
        'CREATE TABLE t (a UInt8) ENGINE = Memory',
        'SET max_result_rows = 0',
        'SET readonly = 0',
        'SELECT 1 SETTINGS max_execution_time = 0',
        'SELECT 1 SETTINGS max_memory_usage = 0',
        `SELECT * FROM file('${join(secrets, 'admin-api.key')}', 'LineAsString')`,
        "INSERT INTO FUNCTION file('/tmp/expstream-query-test.tsv', 'TSVRaw') SELECT 1",
      ]) {
        await expect(executor.rows(sql), sql).rejects.toThrow(/READONLY|readonly mode/);
      }
      expect(await executor.rows("SELECT toString(getSetting('readonly')) AS r, count() AS halts FROM halts")).toEqual([{ r: '1', halts: '1' }]);
    } finally {
      await executor.close();
    }
  });
});
