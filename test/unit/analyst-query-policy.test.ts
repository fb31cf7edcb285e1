import { describe, expect, it } from 'vitest';
import { isPipelineError } from '../../services/common/errors.ts';
import { checkAnalystStatement, type PolicyContext } from '../../services/cli/query/analystPolicy.ts';
import { parseAstDump, UnreadableDump } from '../../services/cli/query/astDump.ts';
import { catalogFromRow } from '../../services/cli/query/functionCatalog.ts';

// The rules over syntax trees as the engine dumps them (EXPLAIN AST, ClickHouse 26.7); the
// same rules against the real engine, statement by statement, are in
// test/integration/cli-query.test.ts.

const catalog = catalogFromRow({
  functions: [
    ['count', '', 'Aggregate Functions', 'System', 1],
    ['sum', '', 'Aggregate Functions', 'System', 1],
    ['equals', '', 'Comparison', 'System', 0],
    ['in', '', 'Comparison', 'System', 0],
    ['plus', '', 'Arithmetic', 'System', 0],
    ['format', '', 'String Replacement', 'System', 0],
    ['file', '', 'Other', 'System', 0],
    ['dictGet', '', 'Dictionary', 'System', 0],
    ['aiGenerate', '', 'AI', 'System', 0],
    ['AIGenerate', 'aiGenerate', '', 'System', 0],
    ['myUdf', '', '', 'ExecutableUserDefined', 0],
  ],
  table_functions: ['file', 'url', 's3', 'remote', 'format', 'numbers', 'merge', 'view'],
  combinators: ['If', 'Distinct', 'State'],
});
const context: PolicyContext = { database: 'expstream', functions: catalog };

const tree = (dump: string) => parseAstDump(dump.replace(/^\n/, '').trimEnd().split('\n'));
const check = (dump: string) => checkAnalystStatement(tree(dump), context);
function refusal(dump: string): string {
  try {
    check(dump);
  } catch (err) {
    if (!isPipelineError(err, "QUERY_REFUSED")) throw err;
    return (err as Error).message;
  }
  throw new Error('expected a refusal');
}

/** `SELECT <expressions> FROM <from>`: dump lines of the select list (its items at depth 4) and of the FROM source (depth 6). */
function select(expressions: string[], from = '      TableIdentifier halts'): string {
  const items = expressions.filter((line) => /^ {4}\S/.test(line)).length;
  return `
SelectWithUnionQuery (children 1)
 ExpressionList (children 1)
  SelectQuery (children 2)
   ExpressionList (children ${items})
${expressions.join('\n')}
   TablesInSelectQuery (children 1)
    TablesInSelectQueryElement (children 1)
     TableExpression (children 1)
${from}`;
}

describe('parseAstDump', () => {
  it('builds the tree the dump describes', () => {
    const root = tree(select(['    Identifier experiment_id (alias e)']));
    expect(root.type).toBe('SelectWithUnionQuery');
    const selectQuery = root.children[0]!.children[0]!;
    expect(selectQuery.children.map((c) => c.type)).toEqual(['ExpressionList', 'TablesInSelectQuery']);
    expect(selectQuery.children[0]!.children[0]).toMatchObject({ type: 'Identifier', text: 'experiment_id (alias e)', line: 5 });
  });

  it('refuses a dump that is not one well-formed tree', () => {
    expect(() => tree('SelectWithUnionQuery (children 2)\n ExpressionList')).toThrow(UnreadableDump);
    expect(() => tree('ExpressionList (children 1)\n  Identifier a')).toThrow(/indented 2/);
    expect(() => tree('Identifier a\nIdentifier b')).toThrow(UnreadableDump);
    expect(() => tree('Identifier a (children 1)\nIdentifier b')).toThrow(UnreadableDump);
    expect(() => parseAstDump([])).toThrow(UnreadableDump);
    // A name that announces children it does not have (e.g. a quoted name "a (children 1)").
    expect(() => tree('ExpressionList (children 2)\n Identifier a (children 1)\n Identifier b')).toThrow(/announces 1 children/);
  });
});

describe('checkAnalystStatement', () => {
  it('allows selects of the pipeline database, generators, combinators and the allowed system tables', () => {
    expect(check(select(['    Function sumIf (alias s) (children 1)', '     ExpressionList (children 2)', '      Identifier x', '      Identifier y']))).toBe('select');
    expect(check(select(['    Function countDistinct (children 1)', '     ExpressionList (children 1)', '      Identifier x'], '      TableIdentifier expstream.halts'))).toBe('select');
    expect(check(select(['    Asterisk'], '      TableIdentifier system.numbers (alias n)'))).toBe('select');
    expect(check(select(['    Asterisk'], '      Function numbers (children 1)\n       ExpressionList (children 1)\n        Literal UInt64_3'))).toBe('select');
    expect(check(select(['    Function format (children 1)', '     ExpressionList (children 2)', "      Literal '{}'", '      Identifier x']))).toBe('select');
  });

  it('refuses table functions that are not generators, wherever they are used', () => {
    const file = '      Function file (children 1)\n       ExpressionList (children 1)\n        Literal \'/etc/passwd\'';
    expect(refusal(select(['    Asterisk'], file))).toMatch(/^refused: table function file\(\) reads outside the pipeline's database/);
    expect(refusal(select(['    Asterisk'], file.replace('file', 'FILE')))).toMatch(/table function FILE\(\)/);
    // format is a harmless string function, but not a table function an analyst needs.
    expect(refusal(select(['    Asterisk'], '      Function format (children 1)\n       ExpressionList (children 1)\n        Literal \'x\''))).toMatch(/table function format\(\)/);
    expect(refusal(select(['    Function url (children 1)', '     ExpressionList (children 1)', "      Literal 'http://x'"]))).toMatch(/table function url\(\)/);
  });

  it('refuses functions that reach outside the database, by name, alias or category, and unknown ones', () => {
    const call = (name: string) => select([`    Function ${name} (children 1)`, '     ExpressionList (children 1)', "      Literal 'x'"]);
    expect(refusal(call('file'))).toBe('refused: function file() reads files on the server');
    expect(refusal(call('dictGet'))).toMatch(/function dictGet\(\) reads dictionaries/);
    expect(refusal(call('AIGenerate'))).toMatch(/function AIGenerate\(\) calls an external AI service/);
    expect(refusal(call('aigenerate'))).toMatch(/calls an external AI service/);
    expect(refusal(call('myUdf'))).toMatch(/is user-defined/);
    expect(refusal(call('noSuchThing'))).toMatch(/not one the engine lists/);
    expect(refusal(call('dictGetIf'))).toMatch(/not one the engine lists/);
  });

  it('refuses tables outside the pipeline database, in FROM and on the right of IN', () => {
    expect(refusal(select(['    Asterisk'], '      TableIdentifier other.secrets'))).toBe("refused: table other.secrets is outside the pipeline's database (expstream)");
    expect(refusal(select(['    Asterisk'], '      TableIdentifier system.processes'))).toMatch(/system table system.processes is not readable/);
    expect(refusal(select(['    Asterisk'], '      TableIdentifier a.b.c'))).toMatch(/ambiguous/);
    const inTable = select(['    Function in (children 1)', '     ExpressionList (children 2)', "      Literal 'x'", '      Identifier system.users']);
    expect(refusal(inTable)).toMatch(/system table system.users/);
  });

  it('refuses SETTINGS, FORMAT, INTO OUTFILE, APPLY and parameters', () => {
    const withClause = (line: string) => select(['    Asterisk']).replace('SelectWithUnionQuery (children 1)', 'SelectWithUnionQuery (children 2)') + `\n${line}`;
    expect(refusal(withClause(" Literal '/tmp/x'"))).toMatch(/INTO OUTFILE writes a file/);
    expect(refusal(withClause(' Identifier CSV'))).toMatch(/FORMAT clause \(FORMAT CSV\)/);
    expect(refusal(withClause(' Set'))).toMatch(/SETTINGS clause could change the limits/);
    const inSubquery = select(['    Asterisk'], '      Subquery (children 1)\n       SelectWithUnionQuery (children 1)\n        ExpressionList (children 1)\n         SelectQuery (children 2)\n          ExpressionList (children 1)\n           Literal UInt64_1\n          Set');
    expect(refusal(inSubquery)).toMatch(/SETTINGS clause/);
    expect(refusal(select(['    Asterisk (children 1)', '     ColumnsTransformerList (children 1)', '      ColumnsApplyTransformer']))).toMatch(/APPLY calls a function/);
    expect(refusal(select(['    QueryParameter p:String']))).toMatch(/query parameters/);
    expect(refusal(select(['    SomethingNew']))).toMatch(/SomethingNew is not something an analyst query may contain/);
  });

  it('allows EXPLAIN, DESCRIBE and SHOW of the pipeline database only', () => {
    const inner = select(['    Asterisk']).split('\n').map((l) => (l ? ` ${l}` : l)).join('\n');
    expect(check(`Explain EXPLAIN PIPELINE (children 1)${inner}`)).toBe('explain');
    expect(refusal(`Explain EXPLAIN (children 2)\n Set${inner}`)).toMatch(/EXPLAIN options/);
    expect(refusal(`Explain EXPLAIN TABLE OVERRIDE (children 1)${inner}`)).toMatch(/EXPLAIN TABLE OVERRIDE is not allowed/);
    expect(check('DescribeQuery (children 1)\n TableExpression (children 1)\n  TableIdentifier halts')).toBe('describe');
    expect(refusal('DescribeQuery (children 1)\n TableExpression (children 1)\n  Function file (children 1)\n   ExpressionList (children 1)\n    Literal \'/x\'')).toMatch(/table function file\(\)/);
    expect(check('ShowTables')).toBe('show');
    expect(check('ShowTables (children 1)\n Identifier expstream')).toBe('show');
    expect(refusal('ShowTables (children 1)\n Identifier system')).toMatch(/only the pipeline's database/);
    expect(check('ShowCreateTableQuery  halts (children 1)\n Identifier halts')).toBe('show');
    expect(check('ShowCreateViewQuery expstream halts (children 2)\n Identifier expstream\n Identifier halts')).toBe('show');
    expect(refusal('ShowCreateTableQuery system users (children 2)\n Identifier system\n Identifier users')).toMatch(/SHOW CREATE of system.users reads outside/);
    expect(refusal('ShowCreateTableQuery  halts (children 2)\n Identifier halts\n Identifier CSV')).toMatch(/FORMAT clause/);
  });

  it('refuses every statement that is not a read, naming it', () => {
    expect(refusal('InsertQuery   (children 2)\n Function file (children 1)\n  ExpressionList\n SelectWithUnionQuery')).toMatch(/^refused: INSERT is not a read/);
    expect(refusal('Set')).toMatch(/^refused: SET is not a read/);
    expect(refusal('SYSTEM query')).toMatch(/^refused: SYSTEM is not a read/);
    expect(refusal('SHOW USERS query')).toMatch(/^refused: SHOW USERS query is not a read/);
    expect(refusal('ShowColumns')).toMatch(/use DESCRIBE TABLE/);
  });
});
