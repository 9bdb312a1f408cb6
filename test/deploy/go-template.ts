/**
 * A small Go text/template renderer with the Helm functions our chart uses, so a test can render
 * deploy/helm/crypto-server without a `helm` binary. Supported: {{ }} with `-` trimming,
 * comments, pipelines, parenthesised calls, fields (.a.b, $.a, $x.a), variables (:= and =),
 * if / else if / else, range (lists and maps, with `$i, $v :=`), with, define / include, and the
 * functions listed in FUNCS. Anything else throws, so a template the chart starts to use but this
 * renderer does not understand fails the test instead of rendering wrongly.
 * Go semantics kept: missing map keys are nil, a field of nil is an error (Helm's "nil pointer
 * evaluating"), empty values (false, 0, "", nil, empty list or map) are false, maps range in key order.
 */
import { stringify } from 'yaml';

type Value = unknown;
type Node =
  | { t: 'text'; text: string }
  | { t: 'action'; pipe: Pipeline }
  | { t: 'if'; branches: { cond: Pipeline; body: Node[] }[]; otherwise: Node[] }
  | { t: 'range'; pipe: Pipeline; body: Node[]; otherwise: Node[] }
  | { t: 'with'; pipe: Pipeline; body: Node[]; otherwise: Node[] };
interface Pipeline {
  decl?: { names: string[]; assign: boolean };
  cmds: Operand[][];
}
type Operand =
  | { k: 'lit'; v: Value }
  | { k: 'field'; base: 'dot' | 'root' | string; path: string[] }
  | { k: 'fn'; name: string }
  | { k: 'sub'; pipe: Pipeline };

class Scope {
  constructor(
    readonly vars: Map<string, Value>,
    readonly parent?: Scope,
  ) {}
  get(name: string): Value {
    if (this.vars.has(name)) return this.vars.get(name);
    if (this.parent) return this.parent.get(name);
    throw new Error(`template: undefined variable $${name}`);
  }
  set(name: string, v: Value): void {
    if (this.vars.has(name) || !this.parent) this.vars.set(name, v);
    else this.parent.set(name, v);
  }
}

/** Splits text into text and action tokens, applying `{{-` / `-}}` whitespace trimming. */
function lex(src: string): ({ t: 'text'; text: string } | { t: 'act'; body: string })[] {
  const out: ({ t: 'text'; text: string } | { t: 'act'; body: string })[] = [];
  let i = 0;
  let trimNext = false;
  while (i < src.length) {
    const open = src.indexOf('{{', i);
    let text = open < 0 ? src.slice(i) : src.slice(i, open);
    if (trimNext) text = text.replace(/^\s+/, '');
    if (open < 0) {
      out.push({ t: 'text', text });
      break;
    }
    let start = open + 2;
    if (src[start] === '-' && /\s/.test(src[start + 1] ?? '')) {
      text = text.replace(/\s+$/, '');
      start += 2;
    }
    out.push({ t: 'text', text });
    // Find the closing }} outside string literals and comments.
    let j = start;
    let inStr: string | undefined;
    const commentAt = src.slice(start).match(/^\s*\/\*/);
    if (commentAt) j = src.indexOf('*/', start) + 2;
    for (; j < src.length; j++) {
      const c = src[j];
      if (inStr) {
        if (c === '\\' && inStr === '"') j++;
        else if (c === inStr) inStr = undefined;
      } else if (c === '"' || c === '`') inStr = c;
      else if (c === '}' && src[j + 1] === '}') break;
    }
    if (j >= src.length) throw new Error('template: unclosed action');
    let end = j;
    trimNext = false;
    if (src[end - 1] === '-' && /\s/.test(src[end - 2] ?? '')) {
      trimNext = true;
      end -= 2;
    }
    const body = src.slice(start, end).trim();
    if (!/^\/\*[\s\S]*\*\/$/.test(body)) out.push({ t: 'act', body });
    i = j + 2;
  }
  return out;
}

/** Tokens of one action: strings, numbers, words, fields, variables, parentheses, pipes, := and ,. */
function tokenize(s: string): string[] {
  const re = /\s*("(?:[^"\\]|\\.)*"|`[^`]*`|\(|\)|\||:=|=|,|[^\s()|,=]+)/gy;
  const toks: string[] = [];
  let m: RegExpExecArray | null;
  while (re.lastIndex < s.length && (m = re.exec(s))) toks.push(m[1]!);
  if (s.slice(re.lastIndex).trim()) throw new Error(`template: cannot tokenize "${s}"`);
  return toks;
}

function parsePipeline(toks: string[]): Pipeline {
  let pos = 0;
  let decl: Pipeline['decl'];
  // `$a := ...`, `$a = ...` or `$i, $v := ...`
  const names: string[] = [];
  let k = 0;
  while (toks[k]?.startsWith('$') && /^\$\w*$/.test(toks[k]!)) {
    names.push(toks[k]!.slice(1));
    if (toks[k + 1] === ',') k += 2;
    else {
      k++;
      break;
    }
  }
  if (names.length && (toks[k] === ':=' || toks[k] === '=')) {
    decl = { names, assign: toks[k] === '=' };
    pos = k + 1;
  }
  const parseCmds = (): Operand[][] => {
    const cmds: Operand[][] = [[]];
    while (pos < toks.length) {
      const tok = toks[pos++]!;
      if (tok === ')') {
        pos--;
        break;
      }
      if (tok === '|') {
        cmds.push([]);
        continue;
      }
      if (tok === '(') {
        const sub = parseCmds();
        if (toks[pos++] !== ')') throw new Error('template: missing )');
        let op: Operand = { k: 'sub', pipe: { cmds: sub } };
        // (expr).field
        if (toks[pos]?.startsWith('.') && toks[pos] !== '.') throw new Error('template: field of a parenthesised expression is not supported');
        cmds.at(-1)!.push(op);
        continue;
      }
      cmds.at(-1)!.push(operand(tok));
    }
    return cmds;
  };
  const cmds = parseCmds();
  if (pos !== toks.length) throw new Error(`template: unexpected "${toks[pos]}"`);
  return { decl, cmds };
}

function operand(tok: string): Operand {
  if (tok.startsWith('"')) return { k: 'lit', v: JSON.parse(tok) };
  if (tok.startsWith('`')) return { k: 'lit', v: tok.slice(1, -1) };
  if (/^-?\d+$/.test(tok)) return { k: 'lit', v: Number(tok) };
  if (/^-?\d*\.\d+$/.test(tok)) return { k: 'lit', v: Number(tok) };
  if (tok === 'true' || tok === 'false') return { k: 'lit', v: tok === 'true' };
  if (tok === 'nil') return { k: 'lit', v: null };
  if (tok === '.') return { k: 'field', base: 'dot', path: [] };
  if (tok.startsWith('.')) return { k: 'field', base: 'dot', path: tok.slice(1).split('.') };
  if (tok === '$') return { k: 'field', base: 'root', path: [] };
  if (tok.startsWith('$.')) return { k: 'field', base: 'root', path: tok.slice(2).split('.') };
  if (tok.startsWith('$')) {
    const [name, ...path] = tok.slice(1).split('.');
    return { k: 'field', base: name!, path };
  }
  if (/^[A-Za-z_]\w*$/.test(tok)) return { k: 'fn', name: tok };
  throw new Error(`template: unexpected token "${tok}"`);
}

/** Parses a template into nodes, collecting `define`d templates into `defs`. */
export function parse(src: string, defs: Map<string, Node[]>): Node[] {
  const toks = lex(src);
  let pos = 0;
  const block = (stops: string[]): { nodes: Node[]; stop: string; rest: string } => {
    const nodes: Node[] = [];
    while (pos < toks.length) {
      const tok = toks[pos++]!;
      if (tok.t === 'text') {
        if (tok.text) nodes.push({ t: 'text', text: tok.text });
        continue;
      }
      const [word] = tok.body.split(/\s+/, 1);
      const rest = tok.body.slice(word!.length).trim();
      if (stops.includes(word!)) return { nodes, stop: word!, rest };
      if (word === 'if') {
        const branches = [{ cond: parsePipeline(tokenize(rest)), body: [] as Node[] }];
        let otherwise: Node[] = [];
        for (;;) {
          const b = block(['else', 'end']);
          if (b.stop === 'end') {
            branches.at(-1)!.body = b.nodes;
            break;
          }
          branches.at(-1)!.body = b.nodes;
          if (b.rest.startsWith('if ')) {
            branches.push({ cond: parsePipeline(tokenize(b.rest.slice(3))), body: [] });
            continue;
          }
          const e = block(['end']);
          otherwise = e.nodes;
          break;
        }
        nodes.push({ t: 'if', branches, otherwise });
      } else if (word === 'range' || word === 'with') {
        const pipe = parsePipeline(tokenize(rest));
        const b = block(['else', 'end']);
        const otherwise = b.stop === 'else' ? block(['end']).nodes : [];
        nodes.push({ t: word, pipe, body: b.nodes, otherwise });
      } else if (word === 'define') {
        const name = JSON.parse(rest);
        defs.set(name, block(['end']).nodes);
      } else if (['block', 'template', 'break', 'continue'].includes(word!)) {
        throw new Error(`template: "${word}" is not supported by this renderer`);
      } else {
        nodes.push({ t: 'action', pipe: parsePipeline(tokenize(tok.body)) });
      }
    }
    if (stops.length) throw new Error(`template: missing {{ end }} (expected one of ${stops.join(', ')})`);
    return { nodes, stop: '', rest: '' };
  };
  return block([]).nodes;
}

export function truthy(v: Value): boolean {
  if (v === null || v === undefined || v === false || v === 0 || v === '') return false;
  if (Array.isArray(v)) return v.length > 0;
  if (typeof v === 'object') return Object.keys(v as object).length > 0;
  return true;
}

function str(v: Value): string {
  if (v === null || v === undefined) return '';
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

const indentLines = (n: number, s: string) =>
  str(s)
    .split('\n')
    .map((l) => ' '.repeat(n) + l)
    .join('\n');

const num = (v: Value, fn: string): number => {
  if (typeof v !== 'number') throw new Error(`template: ${fn} wants numbers, got ${JSON.stringify(v)}`);
  return v;
};

/** The functions (Go built-ins and Sprig/Helm ones) the chart uses; nothing else exists. */
const FUNCS: Record<string, (...a: Value[]) => Value> = {
  toYaml: (v) => (v === null || v === undefined ? 'null' : stringify(v, { lineWidth: 0 }).replace(/\n$/, '')),
  nindent: (n, s) => '\n' + indentLines(num(n, 'nindent'), str(s)),
  indent: (n, s) => indentLines(num(n, 'indent'), str(s)),
  quote: (...vs) => vs.map((v) => JSON.stringify(str(v))).join(' '),
  default: (d, v) => (truthy(v) ? v : d),
  add: (...vs) => vs.reduce<number>((a, v) => a + num(v, 'add'), 0),
  mul: (...vs) => vs.reduce<number>((a, v) => a * num(v, 'mul'), 1),
  eq: (a, ...bs) => bs.some((b) => a === b),
  ne: (a, b) => a !== b,
  not: (v) => !truthy(v),
  and: (...vs) => vs.find((v) => !truthy(v)) ?? vs.at(-1),
  or: (...vs) => vs.find((v) => truthy(v)) ?? vs.at(-1),
  trunc: (n, s) => str(s).slice(0, num(n, 'trunc')),
  trimSuffix: (suffix, s) => (str(s).endsWith(str(suffix)) ? str(s).slice(0, -str(suffix).length || undefined) : str(s)),
  printf: (fmt, ...args) => {
    let i = 0;
    return str(fmt).replace(/%([sdv%])/g, (_m, c: string) => {
      if (c === '%') return '%';
      const a = args[i++];
      if (c === 'd') return String(num(a, 'printf %d'));
      return str(a);
    });
  },
};

export interface RenderContext {
  defs: Map<string, Node[]>;
}

function field(v: Value, path: string[], what: string): Value {
  let cur = v;
  for (const p of path) {
    if (cur === null || cur === undefined) throw new Error(`template: nil pointer evaluating ${what}`);
    if (typeof cur !== 'object') throw new Error(`template: can't evaluate field ${p} in ${what}`);
    cur = (cur as Record<string, Value>)[p];
  }
  return cur;
}

function evalPipe(pipe: Pipeline, dot: Value, root: Value, scope: Scope, ctx: RenderContext): Value {
  let prev: Value;
  let first = true;
  for (const cmd of pipe.cmds) {
    if (cmd.length === 0) throw new Error('template: empty command');
    const head = cmd[0]!;
    const args = cmd.slice(1).map((o) => evalOperand(o, dot, root, scope, ctx));
    if (!first) args.push(prev);
    if (head.k === 'fn') {
      if (head.name === 'include') {
        const [name, data] = args;
        const body = ctx.defs.get(str(name));
        if (!body) throw new Error(`template: no template "${str(name)}"`);
        prev = exec(body, data, root, new Scope(new Map()), ctx);
      } else {
        const fn = FUNCS[head.name];
        if (!fn) throw new Error(`template: function "${head.name}" not defined in this renderer`);
        prev = fn(...args);
      }
    } else {
      if (args.length) throw new Error('template: arguments given to a non-function');
      prev = evalOperand(head, dot, root, scope, ctx);
    }
    first = false;
  }
  return prev;
}

function evalOperand(o: Operand, dot: Value, root: Value, scope: Scope, ctx: RenderContext): Value {
  switch (o.k) {
    case 'lit':
      return o.v;
    case 'sub':
      return evalPipe(o.pipe, dot, root, scope, ctx);
    case 'fn':
      return evalPipe({ cmds: [[o]] }, dot, root, scope, ctx);
    case 'field': {
      const base = o.base === 'dot' ? dot : o.base === 'root' ? root : scope.get(o.base);
      return field(base, o.path, `.${o.path.join('.')}`);
    }
  }
}

function exec(nodes: Node[], dot: Value, root: Value, scope: Scope, ctx: RenderContext): string {
  let out = '';
  for (const n of nodes) {
    switch (n.t) {
      case 'text':
        out += n.text;
        break;
      case 'action': {
        const v = evalPipe(n.pipe, dot, root, scope, ctx);
        if (n.pipe.decl) {
          for (const name of n.pipe.decl.names) (n.pipe.decl.assign ? scope.set(name, v) : scope.vars.set(name, v));
        } else out += v === null || v === undefined ? '<no value>' : str(v);
        break;
      }
      case 'if': {
        const inner = new Scope(new Map(), scope);
        const hit = n.branches.find((b) => truthy(evalPipe(b.cond, dot, root, inner, ctx)));
        out += exec(hit ? hit.body : n.otherwise, dot, root, inner, ctx);
        break;
      }
      case 'with': {
        const inner = new Scope(new Map(), scope);
        const v = evalPipe(n.pipe, dot, root, inner, ctx);
        if (n.pipe.decl) inner.vars.set(n.pipe.decl.names[0]!, v);
        out += truthy(v) ? exec(n.body, v, root, inner, ctx) : exec(n.otherwise, dot, root, inner, ctx);
        break;
      }
      case 'range': {
        const v = evalPipe({ cmds: n.pipe.cmds }, dot, root, scope, ctx);
        const entries: [Value, Value][] = Array.isArray(v)
          ? v.map((x, i) => [i, x])
          : v && typeof v === 'object'
            ? Object.keys(v)
                .sort()
                .map((k) => [k, (v as Record<string, Value>)[k]])
            : v === null || v === undefined
              ? []
              : (() => {
                  throw new Error(`template: range can't iterate over ${JSON.stringify(v)}`);
                })();
        if (entries.length === 0) {
          out += exec(n.otherwise, dot, root, scope, ctx);
          break;
        }
        for (const [key, val] of entries) {
          const inner = new Scope(new Map(), scope);
          const names = n.pipe.decl?.names ?? [];
          if (names.length === 1) inner.vars.set(names[0]!, val);
          if (names.length === 2) {
            inner.vars.set(names[0]!, key);
            inner.vars.set(names[1]!, val);
          }
          out += exec(n.body, val, root, inner, ctx);
        }
        break;
      }
    }
  }
  return out;
}

/** Renders one parsed template with `data` as both dot and `$`. */
export function render(nodes: Node[], data: Value, ctx: RenderContext): string {
  return exec(nodes, data, data, new Scope(new Map([['', data]])), ctx);
}
