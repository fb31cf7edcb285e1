import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { analystQuerySettings, DEFAULT_QUERY_LIMITS, QUERY_LIMIT_CEILINGS, type SettingValue } from '../../services/cli/query/analystSettings.ts';
import { openEmbeddedReadOnly, type ReadOnlyEngine } from '../../services/cli/query/readOnlyEngine.ts';
import { splitSqlStatements } from '../../services/common/sqlStatements.ts';

/**
 * infra/clickhouse/readonly-user.sql on the embedded engine. chDB has no writable access
 * storage (CREATE USER / SETTINGS PROFILE / GRANT need a server), so what runs here is what
 * can: the engine parses every statement; the profile, read through the engine's own lexer,
 * sets readonly = 1 and bounds every setting expctl query sends; and the profile's settings,
 * put in force on the engine, keep a session to reads whose limits no statement can lift.
 */

const ROOT = resolve(import.meta.dirname, '../..');
const DATABASE = 'pipeline_db';
const LIMITS = ['max_result_rows', 'max_execution_time', 'max_memory_usage'];

interface ProfileSetting {
  value: string;
  min?: string;
  max?: string;
  /** CONST, READONLY, WRITABLE or CHANGEABLE_IN_READONLY. */
  writability?: string;
}

const dataDir = mkdtempSync(join(tmpdir(), 'readonly-user-'));
let parser: ReadOnlyEngine;
let statements: string[];

beforeAll(async () => {
  const script = readFileSync(resolve(ROOT, 'infra/clickhouse/readonly-user.sql'), 'utf8');
  statements = splitSqlStatements(script.replaceAll('__PIPELINE_DATABASE__', DATABASE).replaceAll('__ANALYST_PASSWORD__', 'an analyst password'));
  parser = await openEmbeddedReadOnly(dataDir, {});
});

afterAll(async () => {
  await parser?.close();
});

/** The statement as the engine formats it, and its tokens as the engine's lexer reads them. */
async function parse(statement: string): Promise<{ canonical: string; tokens: [string, string][] }> {
  const [row] = await parser.rows(
    `WITH formatQuerySingleLine({q:String}) AS c
     SELECT c AS canonical, arrayMap(t -> (substring(c, t.1 + 1, t.2 - t.1), toString(t.3)), arrayFilter(t -> t.3 NOT IN ('Whitespace', 'Comment'), tokenizeQuery(c))) AS tokens`,
    { q: statement },
  );
  return row as { canonical: string; tokens: [string, string][] };
}

/** `SETTINGS name = value [MIN m] [MAX m] [CONST | ...], ...` of a CREATE SETTINGS PROFILE. */
function profileSettings(tokens: [string, string][]): Map<string, ProfileSetting> {
  const start = tokens.map(([text]) => text.toUpperCase()).lastIndexOf('SETTINGS');
  const settings = new Map<string, ProfileSetting>();
  const literal = (text: string) => text.replace(/^'(.*)'$/, '$1');
  for (let i = start + 1; i < tokens.length; i++) {
    const name = tokens[i]![0];
    expect(tokens[i + 1]?.[1], `${name} =`).toBe('Equals');
    const setting: ProfileSetting = { value: literal(tokens[i + 2]![0]) };
    for (i += 3; i < tokens.length && tokens[i]![1] !== 'Comma'; i++) {
      const word = tokens[i]![0].toUpperCase();
      if (word === 'MIN' || word === 'MAX') setting[word === 'MIN' ? 'min' : 'max'] = literal(tokens[++i]![0]);
      else setting.writability = word;
    }
    settings.set(name, setting);
  }
  return settings;
}

describe('infra/clickhouse/readonly-user.sql', () => {
  it('parses on the engine: a settings profile, the user, its grant', async () => {
    expect(statements).toHaveLength(3);
    const canonical = await Promise.all(statements.map(async (s) => (await parse(s)).canonical));
    expect(canonical[0]).toMatch(/^CREATE SETTINGS PROFILE IF NOT EXISTS `expstream_analyst` SETTINGS readonly = 1 CONST, /);
    expect(canonical[1]).toBe(`CREATE USER IF NOT EXISTS expstream_analyst IDENTIFIED WITH sha256_password BY 'an analyst password' DEFAULT DATABASE ${DATABASE} SETTINGS PROFILE \`expstream_analyst\``);
    // SELECT on the pipeline's database and nothing else: no other database, no FILE/URL/S3/REMOTE source, no dictGet.
    expect(canonical[2]).toBe(`GRANT SELECT ON ${DATABASE}.* TO expstream_analyst`);
  });

  it('makes the user read-only and bounds every setting expctl query sends: the limits between MIN and MAX, the rest constant', async () => {
    const profile = profileSettings((await parse(statements[0]!)).tokens);
    expect(profile.get('readonly')).toEqual({ value: '1', writability: 'CONST' });
    const sent = analystQuerySettings(DEFAULT_QUERY_LIMITS);
    const smallest = analystQuerySettings({ maxRows: 1, timeoutSeconds: 1, maxMemoryMiB: 1 });
    const largest = analystQuerySettings(QUERY_LIMIT_CEILINGS);
    for (const [name, value] of Object.entries(sent)) {
      const setting = profile.get(name);
      expect(setting, name).toBeDefined();
      expect(setting!.value, name).toBe(String(value));
      if (LIMITS.includes(name)) {
        // Every value the flags accept is within the bounds, and 0 ("no limit") is not.
        expect(setting!.writability, name).toBe('CHANGEABLE_IN_READONLY');
        expect(Number(setting!.min), name).toBeGreaterThanOrEqual(1);
        expect(Number(setting!.min), name).toBeLessThanOrEqual(Number(smallest[name]));
        expect(setting!.max, name).toBe(String(largest[name]));
      } else {
        expect(setting!.writability, name).toMatch(/^(CONST|READONLY)$/);
      }
    }
    expect([...profile.keys()].sort()).toEqual(['readonly', ...Object.keys(sent)].sort());
    // Every setting it names is one this engine has (a misspelt one would fail on the server only).
    const [known] = await parser.rows("SELECT groupArray(name) AS names FROM system.settings WHERE has(splitByChar(',', {names:String}), name)", { names: [...profile.keys()].join(',') });
    expect((known!.names as string[]).sort()).toEqual([...profile.keys()].sort());
  });

  it("keeps a session under the profile's settings to reads whose limits no statement can lift", async () => {
    const profile = profileSettings((await parse(statements[0]!)).tokens);
    const settings: Record<string, SettingValue> = {};
    for (const [name, { value }] of profile) if (name !== 'readonly') settings[name] = value;
    const session = await openEmbeddedReadOnly(dataDir, settings);
    try {
      const inForce = await session.rows("SELECT name, value FROM system.settings WHERE has(splitByChar(',', {names:String}), name) ORDER BY name", { names: [...profile.keys()].join(',') });
      expect(inForce).toEqual([...profile].map(([name, { value }]) => ({ name, value })).sort((a, b) => a.name.localeCompare(b.name)));
      for (const sql of ['SET max_result_rows = 0', 'SET readonly = 0', 'SELECT 1 SETTINGS max_execution_time = 0', 'SELECT 1 SETTINGS max_memory_usage = 0', 'CREATE TABLE t (a UInt8) ENGINE = Memory', "INSERT INTO FUNCTION file('/tmp/readonly-user-test.tsv', 'TSVRaw') SELECT 1", "SELECT * FROM file('/etc/hostname', 'LineAsString')", "SELECT * FROM url('http://127.0.0.1:1/', 'LineAsString')"]) {
        await expect(session.rows(sql), sql).rejects.toThrow(/READONLY|readonly mode/);
      }
      await expect(session.rows('SELECT number FROM numbers(10001)')).rejects.toThrow(/TOO_MANY_ROWS_OR_BYTES/);
      expect(await session.rows('SELECT count() AS n FROM numbers(10000)')).toEqual([{ n: '10000' }]);
    } finally {
      await session.close();
    }
  });
});
