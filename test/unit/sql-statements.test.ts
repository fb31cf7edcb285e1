import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { splitSqlStatements } from '../../services/common/sqlStatements.ts';

describe('splitSqlStatements', () => {
  it('splits on semicolons and drops empty statements', () => {
    expect(splitSqlStatements('SELECT 1;\n\nSELECT 2 ;;\n')).toEqual(['SELECT 1', 'SELECT 2']);
  });

  it('keeps semicolons inside quotes and identifiers', () => {
    const sql = `INSERT INTO t VALUES ('a;b', 'it''s; fine', 'x\\';y'); SELECT \`odd;name\` FROM "q;t"`;
    expect(splitSqlStatements(sql)).toEqual([`INSERT INTO t VALUES ('a;b', 'it''s; fine', 'x\\';y')`, 'SELECT `odd;name` FROM "q;t"']);
  });

  it('ignores semicolons in comments and removes the comments', () => {
    const sql = `-- a comment; with a semicolon\nCREATE TABLE t (a UInt8) /* block; comment */ ENGINE = Memory;\n-- trailing`;
    expect(splitSqlStatements(sql)).toEqual(['CREATE TABLE t (a UInt8)   ENGINE = Memory']);
  });

  it('returns nothing for a script of only comments', () => {
    expect(splitSqlStatements('-- nothing here\n/* nor here */')).toEqual([]);
  });
});

describe('infra/clickhouse/readonly-user.sql', () => {
  it('splits into its three statements, the comments (with their semicolons) dropped', () => {
    const script = readFileSync(resolve(import.meta.dirname, '../../infra/clickhouse/readonly-user.sql'), 'utf8');
    const statements = splitSqlStatements(script);
    expect(statements.map((s) => s.split(/\s+/).slice(0, 3).join(' '))).toEqual(['CREATE SETTINGS PROFILE', 'CREATE USER IF', 'GRANT SELECT ON']);
    expect(statements.join('\n')).not.toContain('--');
  });
});
