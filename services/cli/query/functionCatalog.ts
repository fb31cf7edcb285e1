import type { Row } from './readOnlyEngine.ts';

/**
 * Which functions an analyst query may call, decided from the engine's own catalog
 * (`system.functions`, `system.table_functions`, `system.aggregate_function_combinators`)
 * so that a function added in a later engine version is judged by what it is, not missed
 * by a list written today:
 *
 * - table functions: only the pure generators below; every other one (file, url, s3,
 *   remote, mysql, executable, merge, ... and whatever comes next) is refused;
 * - functions of the engine's categories that reach outside the database (dictionaries, AI
 *   services, introspection) and user-defined functions are refused, and so are the few
 *   functions of other categories that read files, the server's configuration or Keeper;
 * - a name the engine does not list is refused, unless it is an aggregate function with
 *   combinators (`sumIf`, `countDistinct`) or one of the parser's own forms (`lambda`).
 */

/**
 * Table functions that generate rows from their arguments alone (and that the engine itself
 * allows in readonly mode; `zeros()` it does not, `system.zeros` stays readable).
 */
export const ALLOWED_TABLE_FUNCTIONS: ReadonlySet<string> = new Set(['numbers', 'numbers_mt', 'generate_series', 'generateseries', 'values']);

/** Functions the parser makes that are not in system.functions. */
const PARSER_FUNCTIONS: ReadonlySet<string> = new Set(['lambda', 'exists', 'untuple', 'grouping']);

const DENIED_CATEGORIES: Readonly<Record<string, string>> = {
  Dictionary: 'reads dictionaries, which load from files, URLs and other databases',
  'Embedded Dictionary': "reads the server's embedded dictionaries",
  AI: 'calls an external AI service',
  Introspection: 'inspects the server process',
};

/** Lower-case names of functions outside those categories that still reach outside the database. */
const DENIED_FUNCTIONS: Readonly<Record<string, string>> = {
  file: 'reads files on the server',
  joinget: 'reads Join tables by name, in any database',
  joingetornull: 'reads Join tables by name, in any database',
  hascolumnintable: "reads other databases' table definitions",
  catboostevaluate: 'loads a model from a file on the server',
  getserversetting: "reads the server's configuration",
  getmergetreesetting: "reads the server's configuration",
  getmacro: "reads the server's configuration",
  showcertificate: "reads the server's TLS certificate",
  filesystemavailable: "reads the server's disks",
  filesystemcapacity: "reads the server's disks",
  filesystemunreserved: "reads the server's disks",
  generateserialid: 'writes to Keeper',
  zookeepersessionuptime: 'reads Keeper',
};

interface FunctionEntry {
  name: string;
  aliasTo: string;
  category: string;
  origin: string;
  isAggregate: boolean;
}

export interface FunctionCatalog {
  /** By lower-case name: several functions may share one (`aiGenerate` and its alias `AIGenerate`). */
  readonly functions: ReadonlyMap<string, readonly FunctionEntry[]>;
  readonly tableFunctions: ReadonlySet<string>;
  readonly combinators: readonly string[];
}

/** One row, so the result-row limit never cuts the catalog short. */
export const CATALOG_QUERY = `SELECT
  (SELECT groupArray((name, alias_to, categories, toString(origin), is_aggregate)) FROM system.functions) AS functions,
  (SELECT groupArray(name) FROM system.table_functions) AS table_functions,
  (SELECT groupArray(name) FROM system.aggregate_function_combinators) AS combinators`;

export function catalogFromRow(row: Row): FunctionCatalog {
  const functions = new Map<string, FunctionEntry[]>();
  for (const [name, aliasTo, category, origin, isAggregate] of row.functions as [string, string, string, string, number | string][]) {
    const key = name.toLowerCase();
    functions.set(key, [...(functions.get(key) ?? []), { name, aliasTo, category, origin, isAggregate: Number(isAggregate) === 1 }]);
  }
  const tableFunctions = new Set((row.table_functions as string[]).map((n) => n.toLowerCase()));
  const combinators = [...(row.combinators as string[])].sort((a, b) => b.length - a.length);
  return { functions, tableFunctions, combinators };
}

export type Verdict = { allowed: true } | { allowed: false; reason: string };

/** Whether `name` may be called as an ordinary (not table) function. */
export function scalarFunctionVerdict(catalog: FunctionCatalog, name: string): Verdict {
  const lower = name.toLowerCase();
  if (ALLOWED_TABLE_FUNCTIONS.has(lower)) return { allowed: true };
  const entries = catalog.functions.get(lower);
  if (entries) {
    // The function, whatever else shares its name in another case, and what each is an alias of.
    const targets = entries.flatMap((e) => [e, ...(catalog.functions.get(e.aliasTo.toLowerCase()) ?? [])]);
    for (const e of targets) {
      const denied = DENIED_FUNCTIONS[e.name.toLowerCase()] ?? DENIED_CATEGORIES[e.category];
      if (denied) return { allowed: false, reason: `function ${name}() ${denied}` };
      if (e.origin !== 'System') return { allowed: false, reason: `function ${name}() is user-defined (${e.origin}); only the engine's own functions are allowed` };
    }
    return { allowed: true };
  }
  if (catalog.tableFunctions.has(lower)) return tableFunctionVerdict(name);
  if (PARSER_FUNCTIONS.has(lower) || isCombinedAggregate(catalog, name, 0)) return { allowed: true };
  return { allowed: false, reason: `function ${name}() is not one the engine lists in system.functions` };
}

/** Whether `name` may be used as a table function (in FROM, DESCRIBE, or on the right of IN). */
export function tableFunctionVerdict(name: string): Verdict {
  if (ALLOWED_TABLE_FUNCTIONS.has(name.toLowerCase())) return { allowed: true };
  return { allowed: false, reason: `table function ${name}() reads outside the pipeline's database; the only table functions allowed are the generators ${[...ALLOWED_TABLE_FUNCTIONS].filter((n) => n !== 'generateseries').join(', ')}` };
}

function isCombinedAggregate(catalog: FunctionCatalog, name: string, depth: number): boolean {
  if (depth > 8) return false;
  for (const combinator of catalog.combinators) {
    if (name.length <= combinator.length || !name.endsWith(combinator)) continue;
    const base = name.slice(0, -combinator.length);
    if (catalog.functions.get(base.toLowerCase())?.some((e) => e.isAggregate) || isCombinedAggregate(catalog, base, depth + 1)) return true;
  }
  return false;
}
