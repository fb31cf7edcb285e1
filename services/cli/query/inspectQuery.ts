import { PipelineError } from '../../common/errors.ts';
import { checkAnalystStatement, type StatementKind } from './analystPolicy.ts';
import { parseAstDump, UnreadableDump } from './astDump.ts';
import { CATALOG_QUERY, catalogFromRow, type FunctionCatalog } from './functionCatalog.ts';
import type { ReadOnlyEngine } from './readOnlyEngine.ts';

/**
 * Decides whether an analyst may run `sql`, on the engine's own parse of it, never on its
 * text: the engine formats it back as one statement (refusing several, comments vanish),
 * dumps the syntax tree of that formatted statement, and analystPolicy.ts walks the tree.
 * The formatted statement is what runs, so what was checked is what runs.
 */

export const MAX_QUERY_CHARS = 65_536;

export interface InspectedQuery {
  /** The statement as the engine formatted it: run this, not the text as given. */
  canonical: string;
  kind: StatementKind;
}

// The text travels as a bound parameter, never spliced into SQL. The quoted names of the
// formatted statement come from the engine's own lexer.
const PARSE_QUERY = `WITH formatQuerySingleLine({q:String}) AS canonical
SELECT canonical, arrayMap(t -> substring(canonical, t.1 + 1, t.2 - t.1), arrayFilter(t -> t.3 = 'QuotedIdentifier', tokenizeQuery(canonical))) AS quoted`;

export type QueryInspector = (sql: string) => Promise<InspectedQuery>;

/**
 * `parser`: a read-only embedded engine (readOnlyEngine.ts); its answers are the engine's
 * parse. The function catalog is read once per inspector.
 */
export function createQueryInspector(parser: ReadOnlyEngine, database: string): QueryInspector {
  let catalog: Promise<FunctionCatalog> | undefined;
  const functions = () => (catalog ??= parser.rows(CATALOG_QUERY).then(([row]) => catalogFromRow(row!)));
  return (sql) => inspect(parser, sql, database, functions);
}

async function inspect(parser: ReadOnlyEngine, sql: string, database: string, functions: () => Promise<FunctionCatalog>): Promise<InspectedQuery> {
  if (sql.trim() === '') refuse('the query is empty');
  if (sql.length > MAX_QUERY_CHARS) refuse(`the query is ${sql.length} characters long; at most ${MAX_QUERY_CHARS} are accepted`);

  let canonical: string;
  let quoted: string[];
  try {
    const [row] = await parser.rows(PARSE_QUERY, { q: sql });
    canonical = String(row?.canonical);
    quoted = (row?.quoted ?? []) as string[];
  } catch (err) {
    refuse(`the engine's parser does not accept it as one statement: ${engineReason(err)}`);
  }
  // The formatter writes a control character, quote or backslash in a quoted name as an
  // escape; such a name would print as several lines of the tree dump, so it is refused.
  const escaped = quoted.find((name) => name.includes('\\'));
  if (escaped !== undefined) refuse(`quoted name ${escaped} holds a control character, quote or backslash`);

  let lines: string[];
  try {
    lines = (await parser.explainRows(`EXPLAIN AST ${canonical}`)).map((row) => String(row.explain));
  } catch (err) {
    refuse(`the engine could not show how it parses the statement: ${engineReason(err)}`);
  }
  let root;
  try {
    root = parseAstDump(lines);
  } catch (err) {
    if (err instanceof UnreadableDump) refuse(`the engine's syntax tree of the statement is not readable (${err.message})`);
    throw err;
  }
  const kind = checkAnalystStatement(root, { database, functions: await functions() });
  return { canonical, kind };
}

/**
 * An engine error as one readable line: without the `Code: n. DB::Exception:` prefixes, the
 * version, and the `In scope ...` tail that repeats the whole query; the error name kept.
 */
export function engineReason(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  const type = /\(([A-Z][A-Z0-9_]+)\)\s*$/.exec(message)?.[1];
  let text = message.replace(/Code: \d+\. DB::\w*Exception: /g, '').replace(/ \(version [^)]*\)/g, '').split('\n')[0]!;
  const scope = text.indexOf(': In scope ');
  if (scope !== -1) text = text.slice(0, scope);
  if (type) text = `${text.replaceAll(`(${type})`, '').replace(/[\s.]+$/, '')}. (${type})`;
  return text.trim();
}

function refuse(reason: string): never {
  throw new PipelineError('QUERY_REFUSED', `refused: ${reason}`);
}
