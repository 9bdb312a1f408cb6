import type { Stats } from 'node:fs';

/**
 * Who besides the owner may read a file that holds a secret (a PIN, a master key), or undefined
 * when nobody may. Others may never; a group only when it is this process's primary group and
 * cannot write: Kubernetes mounts Secret volumes group-owned by the pod's fsGroup with the group
 * read bit set (0440), which a strict 0600 rule would refuse although no one outside the pod reads
 * it (the chart runs with runAsGroup = fsGroup). A supplementary group (`users`, `docker` on a
 * shared host) is not enough: its other members could read the secret.
 */
export function secretFileExposure(st: Pick<Stats, 'mode' | 'gid'>, primaryGid: number | undefined = process.getgid?.()): 'others' | 'group' | undefined {
  if ((st.mode & 0o007) !== 0) return 'others';
  if ((st.mode & 0o070) === 0) return undefined;
  if ((st.mode & 0o020) !== 0 || st.gid !== primaryGid) return 'group';
  return undefined;
}
