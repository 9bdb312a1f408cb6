/**
 * RFC 7644 §3.4.2.2 filter grammar → a small AST, for translation to SQL (filter-sql.ts).
 *
 * Why not scimmy's Filter here: it flattens filters into OR-of-AND form and gets negated groups
 * wrong — `not (a or b)` becomes `(not a) or (not b)`, and `(a or b) and not (c)` loses the
 * `not (c)` — which would silently return the wrong users. scimmy's Filter is still what PatchOp
 * uses for value-path selection in memory (idp-quirks.ts).
 */
import { SCIMMY } from './schemas';

export type FilterNode =
  | { kind: 'and' | 'or'; left: FilterNode; right: FilterNode }
  | { kind: 'not'; expr: FilterNode }
  | { kind: 'cmp'; path: string; op: string; value?: unknown }
  /** attr[filter]: the inner filter applies to one element of the multi-valued attribute. */
  | { kind: 'valuePath'; path: string; filter: FilterNode };

type Token = { t: '(' | ')' | '[' | ']' } | { t: 'str'; v: string } | { t: 'word'; v: string };

export const COMPARE_OPS = new Set(['eq', 'ne', 'co', 'sw', 'ew', 'gt', 'lt', 'ge', 'le', 'pr']);
const MAX_LENGTH = 2000;
const MAX_DEPTH = 32;
const ATTR_PATH = /^[A-Za-z][\w$:.-]*$/;

export function invalidFilter(message: string): Error {
  return new SCIMMY.Types.Error(400, 'invalidFilter', message);
}

function tokenize(input: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < input.length) {
    const c = input[i];
    if (/\s/.test(c)) {
      i++;
    } else if (c === '(' || c === ')' || c === '[' || c === ']') {
      tokens.push({ t: c });
      i++;
    } else if (c === '"') {
      let j = i + 1;
      while (j < input.length && input[j] !== '"') j += input[j] === '\\' ? 2 : 1;
      if (j >= input.length) throw invalidFilter('unterminated string in filter');
      let v: unknown;
      try {
        v = JSON.parse(input.slice(i, j + 1));
      } catch {
        throw invalidFilter('invalid escape in a filter string');
      }
      tokens.push({ t: 'str', v: v as string });
      i = j + 1;
    } else {
      let j = i;
      while (j < input.length && !/[\s()[\]"]/.test(input[j])) j++;
      tokens.push({ t: 'word', v: input.slice(i, j) });
      i = j;
    }
  }
  return tokens;
}

class Parser {
  private pos = 0;
  private depth = 0;
  constructor(private readonly tokens: Token[]) {}

  private peek(): Token | undefined {
    return this.tokens[this.pos];
  }
  private isWord(v: string): boolean {
    const t = this.peek();
    return t?.t === 'word' && t.v.toLowerCase() === v;
  }
  private expect(t: '(' | ')' | '[' | ']'): void {
    if (this.peek()?.t !== t) throw invalidFilter(`expected "${t}" in filter`);
    this.pos++;
  }

  parse(): FilterNode {
    const node = this.or();
    if (this.pos !== this.tokens.length) throw invalidFilter('unexpected text after the end of the filter');
    return node;
  }

  private or(): FilterNode {
    if (++this.depth > MAX_DEPTH) throw invalidFilter('filter is nested too deeply');
    let left = this.and();
    while (this.isWord('or')) {
      this.pos++;
      left = { kind: 'or', left, right: this.and() };
    }
    this.depth--;
    return left;
  }

  private and(): FilterNode {
    let left = this.unary();
    while (this.isWord('and')) {
      this.pos++;
      left = { kind: 'and', left, right: this.unary() };
    }
    return left;
  }

  private unary(): FilterNode {
    if (this.isWord('not')) {
      this.pos++;
      return { kind: 'not', expr: this.unary() };
    }
    if (this.peek()?.t === '(') {
      this.pos++;
      const inner = this.or();
      this.expect(')');
      return inner;
    }
    return this.attribute();
  }

  private attribute(): FilterNode {
    const t = this.peek();
    if (t?.t !== 'word' || !ATTR_PATH.test(t.v)) throw invalidFilter('expected an attribute name in filter');
    this.pos++;
    const path = t.v;
    if (this.peek()?.t === '[') {
      this.pos++;
      const inner = this.or();
      this.expect(']');
      const next = this.peek();
      // Entra ID also sends `emails[type eq "work"].value eq "x"`: the comparison joins the element filter.
      if (next?.t === 'word' && next.v.startsWith('.')) {
        this.pos++;
        const sub = next.v.slice(1);
        if (!ATTR_PATH.test(sub)) throw invalidFilter('expected a sub-attribute name after "]."');
        return { kind: 'valuePath', path, filter: { kind: 'and', left: inner, right: this.comparison(sub) } };
      }
      return { kind: 'valuePath', path, filter: inner };
    }
    return this.comparison(path);
  }

  private comparison(path: string): FilterNode {
    const opTok = this.peek();
    const op = opTok?.t === 'word' ? opTok.v.toLowerCase() : '';
    if (!COMPARE_OPS.has(op)) throw invalidFilter(`expected a comparison operator after "${path}"`);
    this.pos++;
    if (op === 'pr') return { kind: 'cmp', path, op };
    const v = this.peek();
    this.pos++;
    if (v?.t === 'str') return { kind: 'cmp', path, op, value: v.v };
    if (v?.t === 'word') {
      const w = v.v.toLowerCase();
      if (w === 'true' || w === 'false') return { kind: 'cmp', path, op, value: w === 'true' };
      if (w === 'null') return { kind: 'cmp', path, op, value: null };
      if (/^-?\d+(\.\d+)?([eE][+-]?\d+)?$/.test(v.v)) return { kind: 'cmp', path, op, value: Number(v.v) };
    }
    throw invalidFilter(`operator "${op}" for "${path}" needs a value: a quoted string, a number, true, false or null`);
  }
}

export function parseFilter(filter: string): FilterNode {
  if (filter.length > MAX_LENGTH) throw invalidFilter(`filter is longer than ${MAX_LENGTH} characters`);
  const tokens = tokenize(filter);
  if (tokens.length === 0) throw invalidFilter('empty filter');
  return new Parser(tokens).parse();
}
