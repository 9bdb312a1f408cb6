import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { buildContext, dockerIgnore, importClosure, parseDockerfile, simulate, type Repo, type StageResult } from './dockerfile-model';
import { coreEnv } from '../../server/config/core';
import { CLOSE_BOUND_MS } from '../../server/shutdown';

/**
 * The production image, computed from the Dockerfile and .dockerignore against this repository
 * (there is no Docker engine here): the runtime stage holds the compiled server, its production
 * dependencies and package.json — no tests, no TypeScript sources or tsconfig, no dev dependency,
 * no .git or data, no compiler or package manager — runs as a non-root user with its data dir a
 * volume, has a HEALTHCHECK, and starts node in exec form so SIGTERM reaches it.
 */

const ROOT = join(__dirname, '..', '..');
const read = (f: string) => readFileSync(join(ROOT, f), 'utf8');
const pkg = JSON.parse(read('package.json')) as { dependencies: Record<string, string>; devDependencies: Record<string, string>; scripts: Record<string, string>; engines: { node: string } };
const ignored = dockerIgnore(read('.dockerignore'));
const repo: Repo = { root: ROOT, context: buildContext(ROOT, ignored), lock: JSON.parse(read('package-lock.json')), packageJson: pkg };
const stages = parseDockerfile(read('Dockerfile'));
const results = simulate(stages, repo);
const runtime: StageResult = results.at(-1)!;
const appFiles = [...runtime.files.entries()].filter(([f]) => f.startsWith('/app/'));
const op = (name: string) => runtime.instructions.filter((i) => i.op === name);

describe('.dockerignore and the build context', () => {
  it.each(['.git/HEAD', 'node_modules/jest/package.json', 'dist/server/cli/main.js', 'data/crypto-server.db', 'test/http/tls.test.ts', 'test-output/x.png', 'deploy/db_password.txt', 'deploy/database_url.txt', 'server/x.test.ts', 'server/http/tls.key', 'x/.env', 'docs/keys.md', 'coverage/lcov.info'])('keeps %s out of the context', (p) => {
    expect(ignored(p)).toBe(true);
  });

  it('keeps what the build needs', () => {
    for (const p of ['package.json', 'package-lock.json', '.npmrc', 'tsconfig.json', 'server/cli/main.ts', 'kms-adapters/local.ts']) expect(repo.context).toContain(p);
    expect(repo.context.filter((f) => f.startsWith('test/') || f.startsWith('.git/'))).toEqual([]);
  });

  it('matches patterns as Docker does (directories, **, re-includes, last rule wins)', () => {
    const m = dockerIgnore('a\n**/*.tmp\nb/*\n!b/keep\n');
    expect([m('a/x/y'), m('x/y/z.tmp'), m('z.tmp'), m('b/c'), m('b/keep'), m('bb'), m('c/a')]).toEqual([true, true, true, true, false, false, false]);
  });
});

describe('the build stage', () => {
  const build = results[0]!;

  it('copies every source folder the server imports, so the compiled entrypoint is complete', () => {
    const closure = importClosure(ROOT, 'server/cli/main.ts');
    expect(closure.size).toBeGreaterThan(50);
    const missing = [...closure].filter((f) => f.endsWith('.ts') && !build.files.has(`/app/dist/${f.replace(/\.ts$/, '.js')}`));
    expect(missing).toEqual([]);
    // …and it reaches the runtime image.
    for (const f of closure) if (f.endsWith('.ts')) expect(runtime.files.has(`/app/dist/${f.replace(/\.ts$/, '.js')}`)).toBe(true);
    expect(closure.has('server/cli/serve.ts') && closure.has('server/http/tls.ts') && closure.has('server/shutdown.ts')).toBe(true);
  });

  it('installs compilers only here', () => {
    expect([...build.files.values()].filter((o) => o.kind === 'apt').map((o) => (o as { pkg: string }).pkg).sort()).toEqual(['g++', 'make', 'python3']);
  });
});

describe('the runtime stage', () => {
  it('is built on the Node major the package declares, from the same base as the build', () => {
    const major = /(\d+)/.exec(pkg.engines.node)![1];
    expect(stages.at(-1)!.base).toMatch(new RegExp(`^node:${major}-`));
    expect(stages.at(-1)!.base).toBe(stages[0]!.base);
  });

  it('contains the compiled server, production dependencies and package.json, nothing else of the repository', () => {
    const kinds = new Set(appFiles.map(([, o]) => o.kind));
    expect([...kinds].sort()).toEqual(['compiled', 'context', 'npm']);
    expect(appFiles.filter(([, o]) => o.kind === 'context').map(([f]) => f)).toEqual(['/app/package.json']);
    expect(runtime.files.has('/app/dist/server/cli/main.js')).toBe(true);
    for (const dep of Object.keys(pkg.dependencies)) expect(runtime.files.get(`/app/node_modules/${dep}/package.json`)).toMatchObject({ kind: 'npm', dev: false });
  });

  it('has no tests, no TypeScript sources or tsconfig, no .git, no data', () => {
    const paths = appFiles.map(([f]) => f);
    expect(paths.filter((f) => /\/test\/|\.test\.|\/dist\/test\b/.test(f) && !f.startsWith('/app/node_modules/'))).toEqual([]);
    expect(paths.filter((f) => /\.ts$/.test(f) && !f.endsWith('.d.ts') && !f.startsWith('/app/node_modules/'))).toEqual([]);
    expect(paths.filter((f) => /\/(\.git|data)\/|tsconfig\.json$|jest\.config|\.npmrc$/.test(f) && !f.startsWith('/app/node_modules/'))).toEqual([]);
    // Compiled output comes only from server sources, never from test/.
    expect(appFiles.filter(([, o]) => o.kind === 'compiled' && (o as { from: string }).from.startsWith('test/'))).toEqual([]);
  });

  it('has no dev dependency', () => {
    const dev = appFiles.filter(([, o]) => o.kind === 'npm' && o.dev).map(([f]) => f);
    expect(dev).toEqual([]);
    // A devDependency stays only where a production dependency needs it too (the lockfile says so,
    // and npm keeps it): that is type declarations alone, no code.
    const kept = Object.keys(pkg.devDependencies).filter((name) => runtime.files.has(`/app/node_modules/${name}/package.json`));
    for (const name of kept) {
      expect(name).toMatch(/^@types\//);
      const lock = repo.lock.packages[`node_modules/${name}`]!;
      expect(lock.dev || lock.devOptional).toBeFalsy();
    }
    for (const name of ['jest', 'typescript', '@swc/core', 'supertest', 'autocannon', 'playwright-core', 'yaml', 'ajv']) expect(runtime.files.has(`/app/node_modules/${name}/package.json`)).toBe(false);
  });

  it('has no compiler and no package manager', () => {
    expect([...runtime.files.values()].filter((o) => o.kind === 'apt')).toEqual([]);
    expect([...runtime.files.keys()].filter((f) => /\/(npm|npx|yarn|yarnpkg|corepack)(\/|$)|\/opt\/yarn/.test(f))).toEqual([]);
    expect(runtime.files.has('/usr/local/bin/node')).toBe(true);
  });

  it('runs as a non-root user with the data dir a volume (read-only root friendly)', () => {
    expect(runtime.user).toMatch(/^[1-9]\d*(:[1-9]\d*)?$/);
    const dataDir = runtime.env.CS_DATA_DIR!;
    expect(dataDir).toBe('/var/lib/crypto-server');
    expect(op('VOLUME').flatMap((i) => i.json ?? i.args.split(/\s+/))).toContain(dataDir);
    expect(op('RUN').some((i) => i.args.includes(`chown 10001:10001 ${dataDir}`))).toBe(true);
    expect(runtime.env.NODE_ENV).toBe('production');
    // The image listens on every interface of its network namespace, on the port it exposes.
    expect(runtime.env.CS_HOST).toBe('0.0.0.0');
    expect(op('EXPOSE').map((i) => i.args)).toEqual([runtime.env.CS_PORT]);
  });

  it('starts node in exec form (SIGTERM reaches it) and checks /healthz', () => {
    const [entrypoint] = op('ENTRYPOINT');
    const [cmd] = op('CMD');
    expect(entrypoint!.json).toEqual(['node', 'dist/server/cli/main.js']);
    expect(cmd!.json).toEqual(['serve']);
    const [health] = op('HEALTHCHECK');
    const exec = JSON.parse(health!.args.slice(health!.args.indexOf('CMD') + 3).trim()) as string[];
    expect(exec[0]).toBe('node');
    expect(exec.join(' ')).toContain("path:'/healthz'");
    expect(exec.join(' ')).toContain('CS_TLS_CERT_FILE'); // https when in-process TLS is on
  });
});

describe('deploy/compose.yaml', () => {
  const compose = parseYaml(read('deploy/compose.yaml')) as { services: Record<string, any> };

  it('migrates in its own service before the server starts, and the server never migrates', () => {
    expect(compose.services.migrate.command).toEqual(['migrate']);
    expect(compose.services['crypto-server'].depends_on.migrate.condition).toBe('service_completed_successfully');
    expect(compose.services['crypto-server'].environment.CS_MIGRATE_ON_START).toBe('false');
  });

  it('runs the server read-only, without capabilities, with a stop grace period above the shutdown bound', () => {
    for (const name of ['migrate', 'crypto-server']) {
      const s = compose.services[name];
      expect(s.read_only).toBe(true);
      expect(s.cap_drop).toEqual(['ALL']);
      expect(s.security_opt).toContain('no-new-privileges:true');
    }
    const s = compose.services['crypto-server'];
    expect(s.volumes).toEqual(['keys:/var/lib/crypto-server']);
    const timeout = Number(s.environment.CS_SHUTDOWN_TIMEOUT_MS);
    expect(timeout).toBe(coreEnv.shape.CS_SHUTDOWN_TIMEOUT_MS.parse(undefined));
    expect(Number(/^(\d+)s$/.exec(s.stop_grace_period)![1]) * 1000).toBeGreaterThanOrEqual(timeout + CLOSE_BOUND_MS);
    // Secrets come from files, never from the compose file.
    expect(JSON.stringify(compose)).not.toMatch(/PASSWORD[^_]|:\/\/[^/:@"]+:[^/@"]+@/);
  });
});

describe('the image model itself', () => {
  it('refuses a RUN step it does not model, and a COPY of something missing from the context', () => {
    const ctx: Repo = { ...repo, context: ['package.json'] };
    expect(() => simulate(parseDockerfile('FROM node:20-bookworm-slim\nRUN curl -o x https://example.com/x'), ctx)).toThrow(/not modelled/);
    expect(() => simulate(parseDockerfile('FROM node:20-bookworm-slim\nCOPY test test'), ctx)).toThrow(/COPY test: nothing in the build context/);
  });

  it('sees what a careless Dockerfile would ship', () => {
    const careless = simulate(parseDockerfile('FROM node:20 AS b\nWORKDIR /app\nCOPY . .\nRUN npm ci\nFROM node:20\nWORKDIR /app\nCOPY --from=b /app /app\nCMD node x.js'), {
      ...repo,
      context: ['package.json', 'tsconfig.json', 'test/a.test.ts', 'server/a.ts'],
    }).at(-1)!;
    expect(careless.files.has('/app/test/a.test.ts')).toBe(true);
    expect([...careless.files.values()].some((o) => o.kind === 'npm' && o.dev)).toBe(true);
    expect(careless.files.has('/usr/local/bin/npm')).toBe(true);
  });
});
