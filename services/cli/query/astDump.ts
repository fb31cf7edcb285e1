/**
 * The syntax tree of a statement as the engine's own parser built it, read back from
 * `EXPLAIN AST`: one line per node, indented one space per level, e.g.
 *
 *     SelectWithUnionQuery (children 1)
 *      ExpressionList (children 1)
 *       SelectQuery (children 2)
 *        ...
 *          TableIdentifier system.numbers (alias n)
 *
 * Every line is checked: each node must have exactly the children its line announces, so
 * a dump that is not one well-formed tree is refused rather than guessed at. (Names cannot
 * break lines: quoted names holding escapes are refused before the dump is taken.)
 */
export interface AstNode {
  /** The node's kind: `SelectQuery`, `Function`, `TableIdentifier`, ... */
  readonly type: string;
  /** What follows the kind on its line, without the `(children n)` suffix: `file`, `db.t (alias x)`. */
  readonly text: string;
  readonly children: readonly AstNode[];
  /** 1-based line of the dump, for messages. */
  readonly line: number;
}

export class UnreadableDump extends Error {}

const LINE = /^( *)(\S+)(?: (.*))?$/;
const CHILDREN = / \(children (\d+)\)$/;

export function parseAstDump(lines: readonly string[]): AstNode {
  if (lines.length === 0) throw new UnreadableDump('the engine returned no syntax tree');
  interface Building { type: string; text: string; children: AstNode[]; line: number; declared: number; depth: number }
  const stack: Building[] = [];
  let root: AstNode | undefined;
  const finish = (node: Building): AstNode => {
    if (node.children.length !== node.declared) {
      throw new UnreadableDump(`line ${node.line}: ${node.type} announces ${node.declared} children, the dump has ${node.children.length}`);
    }
    return { type: node.type, text: node.text, children: node.children, line: node.line };
  };
  const closeTo = (depth: number) => {
    while (stack.length > depth) {
      const done = finish(stack.pop()!);
      const parent = stack.at(-1);
      if (parent) parent.children.push(done);
      else root = done;
    }
  };
  lines.forEach((line, index) => {
    const children = CHILDREN.exec(line);
    const raw = children ? line.slice(0, children.index) : line;
    const match = LINE.exec(raw);
    if (!match) throw new UnreadableDump(`line ${index + 1} is not a node: ${JSON.stringify(raw.slice(0, 80))}`);
    const depth = match[1]!.length;
    if (index === 0 ? depth !== 0 : depth === 0 || depth > stack.length) {
      throw new UnreadableDump(`line ${index + 1} is indented ${depth}, which does not continue the tree`);
    }
    closeTo(depth);
    stack.push({ type: match[2]!, text: match[3] ?? '', children: [], line: index + 1, declared: children ? Number(children[1]) : 0, depth });
  });
  closeTo(0);
  return root!;
}

/** The first word of a node's text: the name of a function, table or identifier. */
export function nameOf(node: AstNode): string {
  const space = node.text.indexOf(' ');
  return space === -1 ? node.text : node.text.slice(0, space);
}

/** Whether the text after the name is nothing or an alias, i.e. the name is the whole of it. */
export function nameIsWhole(node: AstNode): boolean {
  const rest = node.text.slice(nameOf(node).length);
  return rest === '' || (rest.startsWith(' (alias ') && rest.endsWith(')'));
}
