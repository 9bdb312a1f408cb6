import { secretFileExposure } from '../../kms-adapters/secret-file';

/** Which modes a PIN or master-key file may have: the owner only, or read-only in the process's primary group. */
describe('secretFileExposure', () => {
  const primary = 2000;
  test.each([
    [0o600, 1000, undefined],
    [0o400, 5555, undefined],
    [0o440, 2000, undefined], // Kubernetes Secret volume with fsGroup 2000
    [0o640, 1000, 'group'], // a supplementary group (users, docker): its other members could read it
    [0o640, 5555, 'group'], // a group this process is not in
    [0o660, 2000, 'group'], // group-writable: anyone in it can replace the PIN
    [0o604, 1000, 'others'],
    [0o644, 1000, 'others'],
  ] as const)('mode %o, gid %d → %s', (mode, gid, expected) => {
    expect(secretFileExposure({ mode: 0o100000 | mode, gid }, primary)).toBe(expected);
  });
});
