import { readFileSync } from 'node:fs';

/** The parts of a V8 .cpuprofile this summary reads. */
interface CpuProfile {
  nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; hitCount?: number }[];
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileShare {
  name: string;
  /** Share of all samples, 0..1. */
  share: number;
}

/** Where a function lives: an npm package, node's own code, a file of this project, or V8 itself. */
function owner(url: string, functionName: string): string {
  if (!url) return functionName || '(native)';
  if (url.startsWith('node:')) return 'node internals';
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg) return pkg[1]!;
  const own = /\/dist\/((?:server|scim|kms-adapters|entities)\/[^?]*)/.exec(url);
  return own ? own[1]! : url;
}

/** Self time of one or more profiles (a server and its workers) grouped by owner (package or file), largest first. */
export function summarizeProfiles(paths: string[], top = 15): ProfileShare[] {
  const time = new Map<string, number>();
  let total = 0;
  for (const path of paths) {
    const p = JSON.parse(readFileSync(path, 'utf8')) as CpuProfile;
    const byId = new Map(p.nodes.map((n) => [n.id, n]));
    p.samples.forEach((id, i) => {
      const dt = p.timeDeltas[i] ?? 0;
      const frame = byId.get(id)?.callFrame;
      const key = owner(frame?.url ?? '', frame?.functionName ?? '');
      time.set(key, (time.get(key) ?? 0) + dt);
      total += dt;
    });
  }
  return [...time.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([name, t]) => ({ name, share: total ? t / total : 0 }));
}
