import type { Stats } from 'node:fs';

/**
 * Who besides the owner may read a file that holds a secret (a PIN, a master key), or undefined
 * when nobody may. Others may never; a group may only when it is this process's own group and
 * cannot write: Kubernetes mounts Secret volumes group-owned by the pod's fsGroup with the group
 * read bit set (0440), which a strict 0600 rule would refuse although no one outside the pod reads it.
 */
export function secretFileExposure(st: Pick<Stats, 'mode' | 'gid'>, groups: readonly number[] = ownGroups()): 'others' | 'group' | undefined {
  if ((st.mode & 0o007) !== 0) return 'others';
  if ((st.mode & 0o070) === 0) return undefined;
  if ((st.mode & 0o020) !== 0 || !groups.includes(st.gid)) return 'group';
  return undefined;
}

function ownGroups(): number[] {
  const gid = process.getgid?.();
  return [...(gid === undefined ? [] : [gid]), ...(process.getgroups?.() ?? [])];
}
