/**
 * What a `docker build` of this repository would put in each stage, computed without Docker: the
 * Dockerfile is parsed, the build context is the repository tree filtered by .dockerignore, COPY
 * is applied file by file, and the RUN commands the Dockerfile uses are modelled (npm ci / prune
 * from package-lock.json, the TypeScript build, apt-get, rm -rf...). A RUN command the model does
 * not know fails, so a new build step cannot slip past the checks unmodelled.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, posix } from 'node:path';

export interface Instruction {
  op: string;
  args: string;
  /** Exec (JSON array) form, when the instruction used it. */
  json?: string[];
  line: number;
}

export interface Stage {
  name?: string;
  base: string;
  instructions: Instruction[];
}

/** Parses a Dockerfile: comments, line continuations, `FROM x AS name`. */
export function parseDockerfile(text: string): Stage[] {
  const stages: Stage[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const start = i + 1;
    let line = lines[i]!;
    if (/^\s*(#|$)/.test(line)) continue;
    while (/\\\s*$/.test(line) && i + 1 < lines.length) {
      line = line.replace(/\\\s*$/, ' ');
      i++;
      if (!/^\s*#/.test(lines[i]!)) line += lines[i]!.trim();
    }
    const m = /^\s*([A-Za-z]+)\s+([\s\S]*)$/.exec(line);
    if (!m) throw new Error(`Dockerfile line ${start}: cannot parse "${line}"`);
    const op = m[1]!.toUpperCase();
    const args = m[2]!.trim();
    let json: string[] | undefined;
    if (args.startsWith('[')) json = JSON.parse(args);
    if (op === 'FROM') {
      const f = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(args);
      if (!f) throw new Error(`Dockerfile line ${start}: bad FROM`);
      stages.push({ base: f[1]!, name: f[2], instructions: [] });
      continue;
    }
    if (!stages.length) throw new Error(`Dockerfile line ${start}: ${op} before FROM`);
    stages.at(-1)!.instructions.push({ op, args, json, line: start });
  }
  return stages;
}

/** .dockerignore semantics: Go filepath.Match patterns plus `**`, `!` re-includes, last match wins, a matched directory covers its contents. */
export function dockerIgnore(text: string): (path: string) => boolean {
  const rules = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => {
      const negate = l.startsWith('!');
      const pattern = posix.normalize((negate ? l.slice(1) : l).replace(/^\/+/, '')).replace(/\/+$/, '');
      const re = pattern
        .split('/')
        .map((seg) => (seg === '**' ? '(?:.*)' : seg.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*').replace(/\?/g, '[^/]')))
        .join('/')
        .replace(/\(\?:\.\*\)\//g, '(?:.*/)?');
      return { negate, re: new RegExp(`^${re}$`) };
    });
  return (path: string) => {
    const parts = path.split('/');
    let ignored = false;
    for (const r of rules) {
      // The path itself or any of its parent directories.
      for (let n = 1; n <= parts.length; n++) {
        if (r.re.test(parts.slice(0, n).join('/'))) {
          ignored = !r.negate;
          break;
        }
      }
    }
    return ignored;
  };
}

/** The build context: files of `root`, relative, minus what .dockerignore excludes. */
export function buildContext(root: string, ignored: (p: string) => boolean): string[] {
  const out: string[] = [];
  const walk = (rel: string) => {
    for (const e of readdirSync(join(root, rel), { withFileTypes: true })) {
      const p = rel ? `${rel}/${e.name}` : e.name;
      // An excluded directory is skipped whole (the .dockerignore has no re-include under one).
      if (ignored(p)) continue;
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) out.push(p);
    }
  };
  walk('');
  return out.sort();
}

/** Where a file in an image stage came from. */
export type Origin =
  | { kind: 'context'; file: string }
  | { kind: 'npm'; pkg: string; dev: boolean }
  | { kind: 'compiled'; from: string }
  | { kind: 'base' }
  | { kind: 'apt'; pkg: string };

export interface StageResult {
  /** Absolute path in the image → origin. Directories are not listed, only their files. */
  files: Map<string, Origin>;
  env: Record<string, string>;
  user?: string;
  workdir: string;
  instructions: Instruction[];
}

/** The parts of a `node:*` base image that the model needs to know about (package managers). */
const NODE_BASE_FILES = ['/usr/local/bin/node', '/usr/local/bin/npm', '/usr/local/bin/npx', '/usr/local/bin/corepack', '/usr/local/bin/yarn', '/usr/local/bin/yarnpkg', '/usr/local/lib/node_modules/npm/package.json', '/usr/local/lib/node_modules/corepack/package.json', '/opt/yarn-v1.22.22/bin/yarn'];

export interface Repo {
  root: string;
  context: string[];
  lock: { packages: Record<string, { dev?: boolean; devOptional?: boolean }> };
  packageJson: { scripts: Record<string, string> };
}

const resolvePath = (cwd: string, p: string) => posix.resolve(cwd, p);

export function simulate(stages: Stage[], repo: Repo): StageResult[] {
  const results: StageResult[] = [];
  stages.forEach((stage) => {
    const from = stages.findIndex((s) => s.name && s.name === stage.base);
    const r: StageResult =
      from >= 0
        ? { files: new Map(results[from]!.files), env: { ...results[from]!.env }, user: results[from]!.user, workdir: results[from]!.workdir, instructions: stage.instructions }
        : { files: new Map(/^node:/.test(stage.base) ? NODE_BASE_FILES.map((f) => [f, { kind: 'base' } as Origin]) : []), env: {}, workdir: '/', instructions: stage.instructions };
    for (const ins of stage.instructions) apply(r, ins, stages, results, repo);
    results.push(r);
  });
  return results;
}

function apply(r: StageResult, ins: Instruction, stages: Stage[], results: StageResult[], repo: Repo): void {
  switch (ins.op) {
    case 'WORKDIR':
      r.workdir = resolvePath(r.workdir, ins.args);
      return;
    case 'ENV':
      for (const m of ins.args.matchAll(/(\w+)=("[^"]*"|\S+)/g)) r.env[m[1]!] = m[2]!.replace(/^"|"$/g, '');
      return;
    case 'USER':
      r.user = ins.args;
      return;
    case 'COPY':
      return copy(r, ins, stages, results, repo);
    case 'RUN':
      for (const cmd of ins.args.split(/\s*&&\s*/)) run(r, cmd.trim(), ins, repo);
      return;
    case 'ADD':
      throw new Error(`Dockerfile line ${ins.line}: ADD is not modelled; use COPY`);
    default:
      return; // metadata only: EXPOSE, VOLUME, HEALTHCHECK, ENTRYPOINT, CMD, LABEL, ARG
  }
}

function copy(r: StageResult, ins: Instruction, stages: Stage[], results: StageResult[], repo: Repo): void {
  const words = ins.json ?? ins.args.split(/\s+/);
  const flags = words.filter((w) => w.startsWith('--'));
  const paths = words.filter((w) => !w.startsWith('--'));
  const dest = paths.pop()!;
  const fromFlag = flags.find((f) => f.startsWith('--from='))?.slice('--from='.length);
  const destDir = dest.endsWith('/') || paths.length > 1;
  const target = resolvePath(r.workdir, dest);
  for (const src of paths) {
    let found = 0;
    if (fromFlag !== undefined) {
      const idx = stages.findIndex((s) => s.name === fromFlag);
      if (idx < 0 || idx >= results.length) throw new Error(`Dockerfile line ${ins.line}: --from=${fromFlag} names no earlier stage`);
      const srcAbs = resolvePath('/', src);
      for (const [file, origin] of results[idx]!.files) {
        if (file === srcAbs || file.startsWith(`${srcAbs}/`)) {
          const rel = file === srcAbs ? posix.basename(file) : file.slice(srcAbs.length + 1);
          r.files.set(file === srcAbs && !destDir ? target : posix.join(target, rel), origin);
          found++;
        }
      }
    } else {
      const norm = posix.normalize(src).replace(/\/+$/, '');
      const clean = norm === '.' ? '' : norm.replace(/^\.\//, '');
      for (const file of repo.context) {
        if (clean === '' || file === clean || file.startsWith(`${clean}/`)) {
          const isDirCopy = file !== clean;
          const rel = isDirCopy ? file.slice(clean === '' ? 0 : clean.length + 1) : posix.basename(file);
          r.files.set(!isDirCopy && !destDir ? target : posix.join(target, rel), { kind: 'context', file });
          found++;
        }
      }
    }
    if (found === 0) throw new Error(`Dockerfile line ${ins.line}: COPY ${src}: nothing in ${fromFlag ? `stage ${fromFlag}` : 'the build context'} (a build would fail)`);
  }
}

function removeUnder(r: StageResult, abs: string): void {
  const re = new RegExp(`^${abs.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*')}(/.*)?$`);
  for (const f of [...r.files.keys()]) if (re.test(f)) r.files.delete(f);
}

function npmInstall(r: StageResult, repo: Repo, omitDev: boolean): void {
  for (const [key, meta] of Object.entries(repo.lock.packages)) {
    if (!key.startsWith('node_modules/')) continue;
    const dev = !!(meta.dev || meta.devOptional);
    if (omitDev && dev) continue;
    r.files.set(posix.join(r.workdir, key, 'package.json'), { kind: 'npm', pkg: key.slice(key.lastIndexOf('node_modules/') + 'node_modules/'.length), dev });
  }
}

function run(r: StageResult, cmd: string, ins: Instruction, repo: Repo): void {
  const words = cmd.split(/\s+/);
  const fail = () => {
    throw new Error(`Dockerfile line ${ins.line}: RUN "${cmd}" is not modelled by test/deploy/dockerfile-model.ts; teach it what the command adds or removes`);
  };
  if (words[0] === 'apt-get') {
    if (words[1] === 'update') return;
    if (words[1] === 'install') {
      for (const pkg of words.slice(2).filter((w) => !w.startsWith('-'))) r.files.set(`/usr/share/doc/${pkg}/copyright`, { kind: 'apt', pkg });
      return;
    }
    return fail();
  }
  if (words[0] === 'rm') {
    if (!/^-r?f?r?$/.test(words[1] ?? '') && words[1] !== '-rf') return fail();
    for (const p of words.slice(2)) removeUnder(r, resolvePath(r.workdir, p));
    return;
  }
  if (['mkdir', 'chown', 'chmod', 'useradd', 'groupadd'].includes(words[0]!)) return; // no file content
  if (words[0] === 'npm' && words[1] === 'ci') return npmInstall(r, repo, words.includes('--omit=dev'));
  if (words[0] === 'npm' && words[1] === 'prune' && words.includes('--omit=dev')) {
    for (const [f, o] of [...r.files]) if (o.kind === 'npm' && o.dev) r.files.delete(f);
    return;
  }
  const build = words[0] === 'npm' && words[1] === 'run' ? repo.packageJson.scripts[words[2]!] : words[0] === 'npx' ? words.slice(1).join(' ') : undefined;
  if (build !== undefined) {
    if (!/^tsc -p tsconfig\.json$/.test(build)) return fail();
    const tsconfig = JSON.parse(readFileSync(join(repo.root, 'tsconfig.json'), 'utf8')) as { compilerOptions: { outDir: string; sourceMap?: boolean } };
    if (![...r.files.keys()].includes(posix.join(r.workdir, 'tsconfig.json'))) throw new Error(`Dockerfile line ${ins.line}: the build runs before tsconfig.json is copied`);
    // tsc compiles what it finds under the stage's sources (an over-approximation of include + imports).
    for (const [f, o] of [...r.files]) {
      if (o.kind !== 'context' || !f.startsWith(`${r.workdir}/`) || !/\.ts$/.test(f) || f.endsWith('.d.ts')) continue;
      const rel = f.slice(r.workdir.length + 1).replace(/\.ts$/, '.js');
      r.files.set(posix.join(r.workdir, tsconfig.compilerOptions.outDir, rel), { kind: 'compiled', from: o.file });
      if (tsconfig.compilerOptions.sourceMap) r.files.set(posix.join(r.workdir, tsconfig.compilerOptions.outDir, `${rel}.map`), { kind: 'compiled', from: o.file });
    }
    return;
  }
  fail();
}

/** Relative imports reachable from `entry` (a .ts file under root): the source files the server needs. */
export function importClosure(root: string, entry: string): Set<string> {
  const seen = new Set<string>();
  const visit = (rel: string) => {
    if (seen.has(rel)) return;
    seen.add(rel);
    const text = readFileSync(join(root, rel), 'utf8');
    for (const m of text.matchAll(/(?:from\s+|import\s*\(\s*|require\(\s*)['"](\.{1,2}\/[^'"]+)['"]/g)) {
      const target = posix.normalize(posix.join(posix.dirname(rel), m[1]!)).replace(/\.js$/, '');
      const candidates = [`${target}.ts`, `${target}/index.ts`, target];
      const hit = candidates.find((c) => {
        try {
          return statSync(join(root, c)).isFile();
        } catch {
          return false;
        }
      });
      if (!hit) throw new Error(`${rel}: cannot resolve import ${m[1]}`);
      if (hit.endsWith('.ts')) visit(hit);
    }
  };
  visit(entry);
  return seen;
}
