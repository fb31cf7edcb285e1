/**
 * Splits a SQL script into statements on `;`, ignoring semicolons inside quotes
 * ('...', "...", `...`) and comments (-- ..., /* ... *\/). ClickHouse's HTTP interface runs
 * one statement per request, so migration files are sent statement by statement.
 */
export function splitSqlStatements(script: string): string[] {
  const statements: string[] = [];
  let current = '';
  let i = 0;
  while (i < script.length) {
    const ch = script[i]!;
    const next = script[i + 1];
    if (ch === '-' && next === '-') {
      const end = script.indexOf('\n', i);
      i = end === -1 ? script.length : end;
      continue;
    }
    if (ch === '/' && next === '*') {
      const end = script.indexOf('*/', i + 2);
      i = end === -1 ? script.length : end + 2;
      current += ' ';
      continue;
    }
    if (ch === "'" || ch === '"' || ch === '`') {
      const end = closingQuote(script, i);
      current += script.slice(i, end);
      i = end;
      continue;
    }
    if (ch === ';') {
      pushStatement(statements, current);
      current = '';
      i++;
      continue;
    }
    current += ch;
    i++;
  }
  pushStatement(statements, current);
  return statements;
}

/** Index just past the quote that closes the one at `start` (backslash and doubled quotes escape). */
function closingQuote(script: string, start: number): number {
  const quote = script[start];
  let i = start + 1;
  while (i < script.length) {
    const ch = script[i];
    if (ch === '\\') {
      i += 2;
      continue;
    }
    if (ch === quote) {
      if (script[i + 1] === quote) {
        i += 2;
        continue;
      }
      return i + 1;
    }
    i++;
  }
  return script.length;
}

function pushStatement(statements: string[], text: string): void {
  const trimmed = text.trim();
  if (trimmed !== '') statements.push(trimmed);
}
