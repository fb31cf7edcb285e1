import { PipelineError } from '../../common/errors.ts';
import { nameIsWhole, nameOf, type AstNode } from './astDump.ts';
import { scalarFunctionVerdict, tableFunctionVerdict, type FunctionCatalog } from './functionCatalog.ts';

/**
 * What an analyst query may be, decided on the engine's parse of it (astDump.ts), by
 * allow-lists: a node kind, statement, table or function not named here is refused, so a
 * construct the engine learns later is refused until someone decides it is a read.
 *
 * - one statement: SELECT (with WITH, UNION, INTERSECT, EXCEPT, subqueries, joins),
 *   EXPLAIN of one, DESCRIBE of a table or subquery, SHOW TABLES / DATABASES / SETTINGS,
 *   SHOW CREATE TABLE / VIEW;
 * - tables: the pipeline's database, and a few system tables that hold no data or metadata
 *   of anyone (system.one, system.numbers, system.zeros);
 * - table functions and functions: see functionCatalog.ts;
 * - no SETTINGS (the limits are the engine's, set before the query), no FORMAT, no INTO
 *   OUTFILE, no APPLY (the dump does not show which function it applies), no parameters.
 */

export type StatementKind = 'select' | 'explain' | 'describe' | 'show';

export interface PolicyContext {
  /** The pipeline's database, the only one an analyst query may read. */
  database: string;
  functions: FunctionCatalog;
}

export const READABLE_SYSTEM_TABLES: ReadonlySet<string> = new Set(['one', 'numbers', 'numbers_mt', 'zeros', 'zeros_mt']);

/** Node kinds that may appear inside a query: expressions, clauses, joins, subqueries. */
const QUERY_NODES: ReadonlySet<string> = new Set([
  'SelectWithUnionQuery', 'SelectIntersectExceptQuery', 'SelectQuery', 'Subquery', 'ExpressionList',
  'Identifier', 'Literal', 'Function', 'Asterisk', 'QualifiedAsterisk',
  'ColumnsRegexpMatcher', 'ColumnsListMatcher', 'QualifiedColumnsRegexpMatcher', 'QualifiedColumnsListMatcher',
  'ColumnsTransformerList', 'ColumnsExceptTransformer', 'ColumnsReplaceTransformer', 'ColumnsReplaceTransformer::Replacement',
  'TablesInSelectQuery', 'TablesInSelectQueryElement', 'TableExpression', 'TableIdentifier', 'TableJoin', 'ArrayJoin', 'SampleRatio',
  'OrderByElement', 'WithElement', 'WindowDefinition', 'WindowListElement', 'InterpolateElement',
]);

/** Why a node kind that is not a read is refused, where a plain "not allowed" would not say enough. */
const REFUSED_NODES: Readonly<Record<string, string>> = {
  Set: 'a SETTINGS clause could change the limits the query runs under; use --max-rows, --timeout and --max-memory',
  ColumnsApplyTransformer: 'APPLY calls a function the check cannot see; write the function calls out',
  QueryParameter: 'query parameters are not supported here; write the values into the query',
};

const EXPLAIN_KINDS: ReadonlySet<string> = new Set(['EXPLAIN', 'EXPLAIN PLAN', 'EXPLAIN AST', 'EXPLAIN SYNTAX', 'EXPLAIN QUERY TREE', 'EXPLAIN PIPELINE', 'EXPLAIN ESTIMATE']);

/** Functions whose second argument, when a bare name, is a table. */
const IN_FUNCTIONS: ReadonlySet<string> = new Set(['in', 'notin', 'globalin', 'globalnotin', 'nullin', 'notnullin', 'globalnullin', 'globalnotnullin']);

/** The statement's kind if an analyst may run it; otherwise a QUERY_REFUSED error naming the reason. */
export function checkAnalystStatement(root: AstNode, context: PolicyContext): StatementKind {
  switch (root.type) {
    case 'SelectWithUnionQuery':
      walk(root, context);
      return 'select';
    case 'Explain':
      checkExplain(root, context);
      return 'explain';
    case 'DescribeQuery':
      checkDescribe(root, context);
      return 'describe';
    case 'ShowTables':
      // SHOW TABLES / DATABASES / SETTINGS / DICTIONARIES: the only child is the database of FROM.
      for (const child of root.children) {
        if (child.type !== 'Identifier') refuse(clauseAfterQuery(child));
        if (nameOf(child) !== context.database) refuse(`SHOW ... FROM / FORMAT ${nameOf(child)}: only the pipeline's database (${context.database}) may be shown, in the default format`);
      }
      return 'show';
    case 'ShowCreateTableQuery':
    case 'ShowCreateViewQuery':
      checkShowCreate(root, context);
      return 'show';
    default:
      return refuse(`${statementLabel(root)} is not a read; an analyst query is one SELECT (WITH, UNION, subqueries), EXPLAIN, DESCRIBE, SHOW TABLES or SHOW CREATE`);
  }
}

function checkExplain(root: AstNode, context: PolicyContext): void {
  if (!EXPLAIN_KINDS.has(root.text)) refuse(`${root.text || 'this EXPLAIN'} is not allowed; EXPLAIN [PLAN | AST | SYNTAX | QUERY TREE | PIPELINE | ESTIMATE] of a SELECT is`);
  const [explained, ...rest] = root.children;
  if (explained?.type === 'Set') refuse('EXPLAIN options are not allowed here; EXPLAIN the query without them');
  if (explained?.type !== 'SelectWithUnionQuery') refuse(`only a SELECT may be explained, not ${explained ? statementLabel(explained) : 'nothing'}`);
  if (rest.length > 0) refuse(clauseAfterQuery(rest[0]!));
  walk(explained, context);
}

function checkDescribe(root: AstNode, context: PolicyContext): void {
  const [described, ...rest] = root.children;
  if (described?.type !== 'TableExpression') refuse('DESCRIBE takes a table, a subquery or a generator');
  if (rest.length > 0) refuse(clauseAfterQuery(rest[0]!));
  walk(described, context);
}

function checkShowCreate(root: AstNode, context: PolicyContext): void {
  // The node's own text is "<database> <table>", the database empty when not given.
  const [database = '', table = ''] = root.text.split(' ');
  const names = database === '' ? 1 : 2;
  if (database !== '' && database !== context.database) refuse(`SHOW CREATE of ${database}.${table} reads outside the pipeline's database (${context.database})`);
  if (root.children.length !== names || root.children.some((c) => c.type !== 'Identifier')) refuse(clauseAfterQuery(root.children[names] ?? root));
}

function walk(top: AstNode, context: PolicyContext): void {
  const pending: { node: AstNode; parent: AstNode | undefined }[] = [{ node: top, parent: undefined }];
  while (pending.length > 0) {
    const { node, parent } = pending.pop()!;
    checkNode(node, parent, context);
    for (const child of node.children) pending.push({ node: child, parent: node });
  }
}

function checkNode(node: AstNode, parent: AstNode | undefined, context: PolicyContext): void {
  if (!QUERY_NODES.has(node.type)) {
    refuse(REFUSED_NODES[node.type] ?? `${node.type} is not something an analyst query may contain`);
  }
  switch (node.type) {
    case 'SelectWithUnionQuery': {
      // Its one child lists the selects; anything after it is an output clause.
      const [selects, ...rest] = node.children;
      if (selects?.type !== 'ExpressionList') refuse('a query without a SELECT list');
      if (rest.length > 0) refuse(clauseAfterQuery(rest[0]!));
      break;
    }
    case 'TableIdentifier':
      checkTable(node, context);
      break;
    case 'Function': {
      const name = nameOf(node);
      if (!nameIsWhole(node)) refuse(`the function name in "${node.text}" is not a plain name`);
      const asTable = parent?.type === 'TableExpression' && parent.children[0] === node;
      const verdict = asTable ? tableFunctionVerdict(name) : scalarFunctionVerdict(context.functions, name);
      if (!verdict.allowed) refuse(verdict.reason);
      if (IN_FUNCTIONS.has(name.toLowerCase())) checkInRightSide(node, context);
      break;
    }
  }
}

/**
 * `x IN t` and `x IN db.t` read the table t. (`x IN f(...)` needs nothing more: every function
 * node is checked, and a table function's name is refused wherever it appears.)
 */
function checkInRightSide(fn: AstNode, context: PolicyContext): void {
  const right = fn.children[0]?.children[1];
  if (right?.type === 'Identifier') checkTable(right, context);
}

function checkTable(node: AstNode, context: PolicyContext): void {
  const name = nameOf(node);
  if (!nameIsWhole(node)) refuse(`the table name in "${node.text}" is not a plain name`);
  const parts = name.split('.');
  if (parts.length === 1) return; // the current database, which is the pipeline's
  if (parts.length > 2) refuse(`table name ${name} is ambiguous (more than one dot)`);
  const [database, table] = parts as [string, string];
  if (database === context.database) return;
  if (database === 'system' && READABLE_SYSTEM_TABLES.has(table)) return;
  if (database === 'system') refuse(`system table ${name} is not readable by analysts (it shows other users, queries or databases); readable: ${[...READABLE_SYSTEM_TABLES].map((t) => `system.${t}`).join(', ')}`);
  refuse(`table ${name} is outside the pipeline's database (${context.database})`);
}

function clauseAfterQuery(node: AstNode): string {
  switch (node.type) {
    case 'Literal':
      return 'INTO OUTFILE writes a file; expctl query prints the result instead';
    case 'Identifier':
      return `a FORMAT clause (FORMAT ${nameOf(node)}) is not allowed; expctl query chooses the format (--json for JSON)`;
    case 'Set':
      return REFUSED_NODES.Set!;
    default:
      return `${node.type} after the query is not allowed`;
  }
}

const STATEMENT_LABELS: Readonly<Record<string, string>> = {
  InsertQuery: 'INSERT', AlterQuery: 'ALTER', DropQuery: 'DROP', CreateQuery: 'CREATE', AttachQuery: 'ATTACH', DetachQuery: 'DETACH',
  OptimizeQuery: 'OPTIMIZE', SYSTEM: 'SYSTEM', KillQueryQuery: 'KILL', GrantQuery: 'GRANT / REVOKE', Set: 'SET', UseQuery: 'USE',
  TruncateQuery: 'TRUNCATE', Rename: 'RENAME', UndropQuery: 'UNDROP', BackupQuery: 'BACKUP / RESTORE', CheckQuery: 'CHECK TABLE',
  ExistsTableQuery: 'EXISTS', CreateSQLFunctionQuery: 'CREATE FUNCTION', ASTTransactionControl: 'a transaction statement',
  ShowColumns: 'SHOW COLUMNS / SHOW INDEX (use DESCRIBE TABLE)', ShowProcesslistQuery: 'SHOW PROCESSLIST', ShowGrantsQuery: 'SHOW GRANTS',
  ShowCreateDatabaseQuery: 'SHOW CREATE DATABASE', ShowFunctions: 'SHOW FUNCTIONS', ShowEngineQuery: 'SHOW ENGINES',
};

function statementLabel(node: AstNode): string {
  return STATEMENT_LABELS[node.type] ?? `${node.type} ${node.text}`.trim();
}

function refuse(reason: string): never {
  throw new PipelineError('QUERY_REFUSED', `refused: ${reason}`);
}
