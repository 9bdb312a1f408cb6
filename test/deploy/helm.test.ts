import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Ajv from 'ajv';
import { CHART_DIR, defaultValues, merge, renderChart, type Manifest, type Rendered } from './helm-chart';
import { parse, render } from './go-template';
import { loadConfig } from '../../server/config';
import { coreEnv, SECRET_SETTINGS } from '../../server/config/core';
import { KMS_SECRET_SETTINGS } from '../../server/config/kms';
import { SCIM_SECRET_SETTINGS } from '../../server/config/scim';
import { CLOSE_BOUND_MS } from '../../server/shutdown';

/**
 * The Helm chart, rendered by a small Go-template renderer (no helm binary here) and parsed:
 * migration only in a pre-install/pre-upgrade Job, probes, PDB, resources, a locked-down
 * securityContext with emptyDirs for the writable paths, secrets only by reference, a grace period
 * that covers the shutdown bound, NOTES with the SAML URLs; values.yaml checked by its schema.
 */

type Container = { name: string; args?: string[]; env?: { name: string; value?: string; valueFrom?: any }[]; volumeMounts?: { name: string; mountPath: string; readOnly?: boolean; subPath?: string }[]; [k: string]: any };

const podSpec = (m: Manifest) => m.spec.template.spec;
const envOf = (c: Container) => Object.fromEntries((c.env ?? []).filter((e) => e.value !== undefined).map((e) => [e.name, e.value!]));
const matches = (selector: Record<string, string>, labels: Record<string, string>) => Object.entries(selector).every(([k, v]) => labels[k] === v);
const SECRETS = [...SECRET_SETTINGS, ...KMS_SECRET_SETTINGS, ...SCIM_SECRET_SETTINGS];

function server(r: Rendered): { deployment: Manifest; container: Container } {
  const deployment = r.get('Deployment');
  return { deployment, container: podSpec(deployment).containers.find((c: Container) => c.name === 'crypto-server') };
}

function migrationJob(r: Rendered): Manifest {
  return r.get('Job');
}

/** The properties every pod of the chart must have, whatever the values. */
function expectLockedDown(pod: any): void {
  expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } });
  // Secret files are 0440 in fsGroup; PIN and master-key files are accepted group-readable only in the primary group.
  expect(pod.securityContext.runAsGroup).toBe(pod.securityContext.fsGroup);
  expect(pod.securityContext.runAsUser).toBeGreaterThan(0);
  for (const c of pod.containers as Container[]) {
    expect(c.securityContext).toMatchObject({ runAsNonRoot: true, readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] }, seccompProfile: { type: 'RuntimeDefault' } });
    expect(c.securityContext.capabilities.add).toBeUndefined();
    expect(c.securityContext.privileged).not.toBe(true);
    expect(c.resources.requests).toEqual({ cpu: expect.anything(), memory: expect.anything() });
    expect(c.resources.limits).toEqual({ cpu: expect.anything(), memory: expect.anything() });
    const volumes = new Map<string, any>((pod.volumes ?? []).map((v: any) => [v.name, v]));
    // Read-only root: whatever is writable is an emptyDir, and the data dir and /tmp are writable.
    for (const m of c.volumeMounts ?? []) {
      const v = volumes.get(m.name);
      expect(v).toBeDefined();
      if (!m.readOnly) expect(Object.keys(v).filter((k) => k !== 'name')).toEqual(['emptyDir']);
      else expect(v.secret).toBeDefined();
    }
    const writable = (c.volumeMounts ?? []).filter((m) => !m.readOnly).map((m) => m.mountPath);
    expect(writable).toEqual(expect.arrayContaining([envOf(c).CS_DATA_DIR, '/tmp']));
  }
}

/** Secrets only by reference: secret settings are files from Secret volumes or secretKeyRefs, never values. */
function expectSecretsByReference(r: Rendered, pod: any): void {
  expect(r.find('Secret')).toEqual([]);
  const volumes = new Map<string, any>((pod.volumes ?? []).map((v: any) => [v.name, v]));
  for (const c of pod.containers as Container[]) {
    for (const e of c.env ?? []) {
      if (SECRETS.includes(e.name)) expect(e.value).toBeUndefined();
      if (e.valueFrom) expect(Object.keys(e.valueFrom)).toEqual(['secretKeyRef']);
      if (e.name.endsWith('_FILE') && e.name !== 'CS_CONFIG_FILE') {
        // The file is in a read-only Secret volume mounted as a directory (so renewals reach it).
        const mount = c.volumeMounts!.find((m) => e.value!.startsWith(`${m.mountPath}/`));
        expect(mount).toMatchObject({ readOnly: true });
        expect(mount!.subPath).toBeUndefined();
        expect(volumes.get(mount!.name).secret.secretName).toMatch(/^[a-z0-9-]+$/);
      }
    }
    expect(c.envFrom).toBeUndefined();
  }
  // No credential-looking text anywhere in the rendered manifests.
  expect(JSON.stringify(r.manifests)).not.toMatch(/:\/\/[^/:@"]+:[^/@"]+@|BEGIN [A-Z ]*PRIVATE KEY/);
}

describe('Helm chart with default values', () => {
  const r = renderChart();

  it('renders the expected objects, optional ones off', () => {
    expect(r.manifests.map((m) => m.kind).sort()).toEqual(['Deployment', 'Job', 'PodDisruptionBudget', 'Service', 'ServiceAccount']);
    for (const m of r.manifests) expect(m.metadata.name).toMatch(/^cs(-migrate)?$/);
  });

  it('migrates only in a pre-install/pre-upgrade hook Job; the Deployment never migrates', () => {
    const job = migrationJob(r);
    expect(job.metadata.annotations!['helm.sh/hook']!.split(',').sort()).toEqual(['pre-install', 'pre-upgrade']);
    expect(job.metadata.annotations!['helm.sh/hook-delete-policy']).toContain('before-hook-creation');
    const [migrate] = podSpec(job).containers as Container[];
    expect(migrate!.args).toEqual(['migrate']);
    expect(podSpec(job).restartPolicy).toBe('Never');
    expect(job.spec.activeDeadlineSeconds).toBeGreaterThan(300); // above the migration lock's wait

    const { deployment, container } = server(r);
    expect(podSpec(deployment).initContainers).toBeUndefined();
    expect(podSpec(deployment).containers).toHaveLength(1);
    expect(container.args).toEqual(['serve']);
    expect(envOf(container).CS_MIGRATE_ON_START).toBe('false');
    // The Job sees the same configuration as the server (same database, same settings).
    expect(migrate!.env).toEqual(container.env);
    expect(migrate!.volumeMounts).toEqual(container.volumeMounts);
  });

  it('probes readiness on /readyz and liveness on /healthz at the port the server listens on', () => {
    const { container } = server(r);
    const port = container.ports.find((p: any) => p.name === 'http');
    expect(port.containerPort).toBe(Number(envOf(container).CS_PORT));
    expect(container.readinessProbe).toMatchObject({ httpGet: { path: '/readyz', port: 'http', scheme: 'HTTP' } });
    expect(container.livenessProbe).toMatchObject({ httpGet: { path: '/healthz', port: 'http', scheme: 'HTTP' } });
    // docs/operations.md: the probe timeout must exceed CS_READY_TIMEOUT_MS (2 s by default).
    expect(container.readinessProbe.timeoutSeconds * 1000).toBeGreaterThan(coreEnv.shape.CS_READY_TIMEOUT_MS.parse(undefined));
    expect(container.livenessProbe.failureThreshold).toBeGreaterThan(1);
  });

  it('has a PodDisruptionBudget and a Service that select the server pods and never the migration pods', () => {
    const { deployment } = server(r);
    const podLabels = deployment.spec.template.metadata.labels;
    const jobLabels = migrationJob(r).spec.template.metadata.labels;
    expect(matches(deployment.spec.selector.matchLabels, podLabels)).toBe(true);
    const pdb = r.get('PodDisruptionBudget');
    expect(pdb.spec.maxUnavailable).toBe(1);
    expect(matches(pdb.spec.selector.matchLabels, podLabels)).toBe(true);
    expect(matches(pdb.spec.selector.matchLabels, jobLabels)).toBe(false);
    const svc = r.get('Service');
    expect(matches(svc.spec.selector, podLabels)).toBe(true);
    expect(matches(svc.spec.selector, jobLabels)).toBe(false);
    expect(svc.spec.ports[0].targetPort).toBe('http');
  });

  it('locks down every pod: non-root, read-only root with emptyDirs, no privilege escalation, no capabilities, seccomp', () => {
    expectLockedDown(podSpec(server(r).deployment));
    expectLockedDown(podSpec(migrationJob(r)));
    expect(podSpec(server(r).deployment).automountServiceAccountToken).toBe(false);
  });

  it('takes secrets only by reference', () => {
    expectSecretsByReference(r, podSpec(server(r).deployment));
    expectSecretsByReference(r, podSpec(migrationJob(r)));
    const { container } = server(r);
    expect(envOf(container).CS_DATABASE_URL_FILE).toBe('/etc/crypto-server/secrets/0/database-url');
    const vol = podSpec(server(r).deployment).volumes.find((v: any) => v.name === 'secret-0');
    expect(vol.secret).toMatchObject({ secretName: 'crypto-server-db', items: [{ key: 'database-url', path: 'database-url' }] });
  });

  it('gives pods a termination grace period that covers the preStop pause, CS_SHUTDOWN_TIMEOUT_MS and closing', () => {
    const { deployment, container } = server(r);
    const timeoutMs = Number(envOf(container).CS_SHUTDOWN_TIMEOUT_MS);
    // The chart's default is the server's own default.
    expect(timeoutMs).toBe(coreEnv.shape.CS_SHUTDOWN_TIMEOUT_MS.parse(undefined));
    const preStop = Number(container.lifecycle.preStop.exec.command[1]);
    expect(container.lifecycle.preStop.exec.command[0]).toBe('sleep');
    expect(podSpec(deployment).terminationGracePeriodSeconds * 1000).toBeGreaterThanOrEqual(preStop * 1000 + timeoutMs + CLOSE_BOUND_MS);
    // Other values keep it consistent.
    const r2 = renderChart({ shutdown: { timeoutSeconds: 120, preStopSleepSeconds: 0 } });
    const s2 = server(r2);
    expect(envOf(s2.container).CS_SHUTDOWN_TIMEOUT_MS).toBe('120000');
    expect(podSpec(s2.deployment).terminationGracePeriodSeconds * 1000).toBeGreaterThanOrEqual(120_000 + CLOSE_BOUND_MS);
  });

  it('sets only known settings, and they make a valid configuration', () => {
    const { container } = server(r);
    const dir = mkdtempSync(join(tmpdir(), 'cs-helm-'));
    try {
      const env: Record<string, string> = {};
      for (const [k, v] of Object.entries(envOf(container))) {
        if (k.endsWith('_FILE')) {
          // Stand-in for the mounted Secret.
          const file = join(dir, k);
          writeFileSync(file, 'postgres://cs:pw@db.example:5432/cs', { mode: 0o600 });
          env[k] = file;
        } else env[k] = v;
      }
      const config = loadConfig(env);
      expect(config.database.type).toBe('postgres');
      expect(config.database.migrateOnStart).toBe(false);
      expect(config.server.workers).toBe(1);
      expect(config.server.host).toBe('0.0.0.0');
      expect(config.server.shutdownTimeoutMs).toBe(25_000);
      expect(config.server.tls).toBeUndefined();
      expect(config.dataDir).toBe('/var/lib/crypto-server');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('prints the SP metadata URL and the ACS URL in NOTES', () => {
    expect(r.notes).toContain('SP metadata URL:  https://crypto.example.com/auth/saml/metadata');
    expect(r.notes).toContain('ACS URL:          https://crypto.example.com/auth/saml/acs');
    const slash = renderChart({ env: { CS_PUBLIC_URL: 'https://keys.example.org/' } });
    expect(slash.notes).toContain('https://keys.example.org/auth/saml/metadata');
    expect(slash.notes).not.toContain('//auth');
  });
});

describe('Helm chart with the optional parts enabled', () => {
  const r = renderChart({
    serviceMonitor: { enabled: true, labels: { release: 'prometheus' } },
    networkPolicy: { enabled: true },
    tls: { enabled: true, existingSecret: 'crypto-server-tls' },
    secretEnv: [{ setting: 'CS_PKCS11_PIN', existingSecret: 'crypto-server-hsm', key: 'pin' }],
    podDisruptionBudget: { enabled: false, maxUnavailable: 1 },
  });

  it('renders a ServiceMonitor scraping /metrics of the Service', () => {
    const sm = r.get('ServiceMonitor');
    expect(sm.apiVersion).toBe('monitoring.coreos.com/v1');
    expect(sm.metadata.labels).toMatchObject({ release: 'prometheus' });
    expect(sm.spec.endpoints).toEqual([expect.objectContaining({ port: 'http', path: '/metrics', scheme: 'https' })]);
    expect(matches(sm.spec.selector.matchLabels, r.get('Service').metadata.labels!)).toBe(true);
  });

  it('renders the example NetworkPolicy for the server pods: ingress on the HTTP port, egress to DNS and the listed peers', () => {
    const np = r.get('NetworkPolicy');
    expect(np.spec.policyTypes).toEqual(['Ingress', 'Egress']);
    expect(matches(np.spec.podSelector.matchLabels, server(r).deployment.spec.template.metadata.labels)).toBe(true);
    expect(np.spec.ingress[0].ports).toEqual([{ port: 'http', protocol: 'TCP' }]);
    expect(np.spec.ingress[0].from).toEqual(r.values.networkPolicy.ingressFrom);
    expect(np.spec.egress.some((e: any) => e.ports.some((p: any) => p.port === 53))).toBe(true);
    expect(np.spec.egress.some((e: any) => JSON.stringify(e.to) === JSON.stringify(r.values.networkPolicy.egressTo))).toBe(true);
  });

  it('serves TLS from a mounted kubernetes.io/tls Secret (a directory mount, so renewals arrive) and probes over HTTPS', () => {
    const { container, deployment } = server(r);
    const env = envOf(container);
    expect(env.CS_TLS_CERT_FILE).toBe('/etc/crypto-server/tls/tls.crt');
    expect(env.CS_TLS_KEY_FILE).toBe('/etc/crypto-server/tls/tls.key');
    expect(container.volumeMounts!.find((m) => m.name === 'tls')).toEqual({ name: 'tls', mountPath: '/etc/crypto-server/tls', readOnly: true });
    expect(podSpec(deployment).volumes.find((v: any) => v.name === 'tls').secret.secretName).toBe('crypto-server-tls');
    expect(container.readinessProbe.httpGet.scheme).toBe('HTTPS');
    expect(container.livenessProbe.httpGet.scheme).toBe('HTTPS');
    expect(loadConfig({ CS_TLS_CERT_FILE: env.CS_TLS_CERT_FILE!, CS_TLS_KEY_FILE: env.CS_TLS_KEY_FILE! }).server.tls).toBeDefined();
  });

  it('passes a secretEnv as a secretKeyRef, never as a value; the PDB can be turned off', () => {
    const { container } = server(r);
    expect(container.env!.find((e) => e.name === 'CS_PKCS11_PIN')).toEqual({ name: 'CS_PKCS11_PIN', valueFrom: { secretKeyRef: { name: 'crypto-server-hsm', key: 'pin' } } });
    expectSecretsByReference(r, podSpec(server(r).deployment));
    expectLockedDown(podSpec(server(r).deployment));
    expect(r.find('PodDisruptionBudget')).toEqual([]);
  });
});

describe('values.schema.json', () => {
  const schema = JSON.parse(readFileSync(join(CHART_DIR, 'values.schema.json'), 'utf8'));
  const ajv = new Ajv({ allErrors: true, allowUnionTypes: true, strict: true }); // a sloppy schema keyword fails here, not silently in helm
  const validate = ajv.compile(schema);
  const check = (over: Record<string, any>) => {
    const ok = validate(merge(defaultValues(), over));
    return { ok, errors: (validate.errors ?? []).map((e) => `${e.instancePath} ${e.message}`).join('; ') };
  };

  it('accepts values.yaml and the examples of the tests above', () => {
    expect(check({})).toEqual({ ok: true, errors: '' });
    expect(check({ serviceMonitor: { enabled: true }, networkPolicy: { enabled: true }, tls: { enabled: true, existingSecret: 'crypto-server-tls' } }).ok).toBe(true);
    expect(check({ secretEnv: [{ setting: 'CS_PKCS11_PIN', existingSecret: 'hsm', key: 'pin' }] }).ok).toBe(true);
  });

  it.each([
    ['a database URL with its password in env', { env: { CS_DATABASE_URL: 'postgres://u:pw@db/cs' } }, /env property name must be valid/],
    ['the HSM PIN in env', { env: { CS_PKCS11_PIN: '1234' } }, /env property name must be valid/],
    ['migrate-on-start for the Deployment', { env: { CS_MIGRATE_ON_START: 'true' } }, /env property name must be valid/],
    ['a setting name that is not CS_*', { env: { DATABASE_URL: 'x' } }, /env property name must be valid/],
    ['a number where settings are strings', { env: { CS_DB_POOL_SIZE: 10 } }, /must be string/],
    ['zero replicas', { replicas: 0 }, /\/replicas must be >= 1/],
    ['TLS without its Secret', { tls: { enabled: true } }, /existingSecret/],
    ['a shutdown timeout as a string', { shutdown: { timeoutSeconds: '25', preStopSleepSeconds: 5 } }, /timeoutSeconds must be integer/],
    ['a secret file that is not a *_FILE setting', { secretFiles: [{ setting: 'CS_DATABASE_URL', existingSecret: 'db', key: 'url' }] }, /must match pattern/],
    ['a secret reference without its key', { secretFiles: [{ setting: 'CS_DATABASE_URL_FILE', existingSecret: 'db' }] }, /must have required property 'key'/],
    ['the old chart\'s envFrom Secret', { existingSecret: 'crypto-server' }, /must NOT have additional properties/],
    ['an invalid memory quantity', { resources: { requests: { cpu: '250m', memory: 'lots' }, limits: { cpu: '1', memory: '512Mi' } } }, /memory must match pattern/],
  ])('refuses %s', (_what, over, message) => {
    const r = check(over);
    expect(r.ok).toBe(false);
    expect(r.errors).toMatch(message);
  });

  it('forbids in env every setting the server treats as secret', () => {
    const forbidden: string[] = schema.properties.env.propertyNames.not.enum;
    for (const name of SECRETS) expect(forbidden).toContain(name);
  });
});

describe('the template renderer itself', () => {
  const run = (src: string, data: unknown) => {
    const defs = new Map();
    return render(parse(src, defs), data, { defs });
  };

  it('implements the Go-template and Helm behaviour the chart relies on', () => {
    expect(run('a {{- " b " -}} c', {})).toBe('a b c');
    expect(run('{{ if .x }}y{{ else if .z }}z{{ else }}n{{ end }}', { x: 0, z: '' })).toBe('n');
    expect(run('{{ if .x }}y{{ else if .z }}z{{ end }}', { z: [1] })).toBe('z');
    expect(run('{{ range $k, $v := .m }}{{ $k }}={{ $v }};{{ end }}', { m: { b: 2, a: 1 } })).toBe('a=1;b=2;');
    expect(run('{{ range $i, $v := .l }}{{ $i }}{{ $v.n }}{{ end }}', { l: [{ n: 'x' }, { n: 'y' }] })).toBe('0x1y');
    expect(run('{{ with .m }}{{ .a }}{{ else }}none{{ end }}', { m: {} })).toBe('none');
    expect(run('{{ define "t" }}[{{ .n }}]{{ end }}{{ include "t" .v | nindent 2 }}', { v: { n: 1 } })).toBe('\n  [1]');
    expect(run('{{ toYaml .m }}', { m: { a: [1, 'x'] } })).toBe('a:\n  - 1\n  - x');
    expect(run('{{ .s | quote }} {{ default "d" .missing }} {{ add 1 2 3 }} {{ mul .n 1000 | quote }}', { s: 'a"b', n: 25 })).toBe('"a\\"b" d 6 "25000"');
    expect(run('{{ printf "%s-%d" .a 7 | trunc 3 | trimSuffix "-" }}', { a: 'ab' })).toBe('ab');
    expect(run('{{- /* comment */ -}}\nx', {})).toBe('x');
    expect(run('{{ $.a }}{{ with .b }}{{ $.a }}{{ . }}{{ end }}', { a: 'r', b: 'w' })).toBe('rrw');
  });

  it('fails on what it does not know or on a field of nil, as helm does', () => {
    expect(() => run('{{ .a.b.c }}', { a: {} })).toThrow(/nil pointer/);
    expect(() => run('{{ lookup "v1" "Secret" "" "" }}', {})).toThrow(/function "lookup" not defined/);
    expect(() => run('{{ if .a }}x', {})).toThrow(/missing \{\{ end \}\}/);
    expect(() => run('{{ include "nope" . }}', {})).toThrow(/no template "nope"/);
  });
});
