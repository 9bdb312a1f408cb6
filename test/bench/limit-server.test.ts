import { limitHandler } from './http/limit-server';
import { entraCreateUser } from './http/scim-requests';
import { listen, type Listening } from '../support/http-server';

/**
 * The HTTP benchmark's ratios are only honest if its limit server really does the core work of each
 * path: an authenticated AES-256-GCM open that refuses a tampered blob, and a fresh key pair with
 * sealed private key per created user. (No timing here: figures come from `npm run bench:http`.)
 */
describe('bench limit server', () => {
  let server: Listening;
  beforeAll(async () => {
    server = await listen(limitHandler);
  });
  afterAll(async () => {
    await server.close();
  });

  const post = (path: string, body: string) => fetch(`${server.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
  const blob = async () => ((await (await fetch(`${server.url}/blob`)).json()) as { wrappedPasswordKey: string }).wrappedPasswordKey;

  it('opens its sealed password key: 32 bytes', async () => {
    const res = await post('/unwrap', JSON.stringify({ wrappedPasswordKey: await blob() }));
    expect(res.status).toBe(200);
    expect(res.headers.get('cache-control')).toBe('no-store');
    const { passwordKey } = (await res.json()) as { passwordKey: string };
    expect(Buffer.from(passwordKey, 'base64url')).toHaveLength(32);
  });

  it('refuses a blob with one flipped byte (the GCM tag and AAD are checked, not skipped)', async () => {
    const raw = Buffer.from(await blob(), 'base64url');
    raw[20]! ^= 0x01;
    const res = await post('/unwrap', JSON.stringify({ wrappedPasswordKey: raw.toString('base64url') }));
    expect(res.status).toBe(403);
  });

  it('refuses a body that is not JSON', async () => {
    expect((await post('/unwrap', 'not json')).status).toBe(400);
  });

  it('creates a user with a fresh P-256 key pair, its private key sealed, its password key wrapped', async () => {
    const make = async (id: string) => {
      const res = await post('/users', entraCreateUser(id));
      expect(res.status).toBe(201);
      return (await res.json()) as { userName: string; publicJwk: Record<string, string>; privateSealed: string; wrappedPasswordKey: string };
    };
    const a = await make('a');
    const b = await make('b');
    expect(a.userName).toBe('Test_User_a');
    expect(a.publicJwk).toMatchObject({ kty: 'EC', crv: 'P-256' });
    expect(a.publicJwk.d).toBeUndefined();
    expect(a.publicJwk.x).not.toBe(b.publicJwk.x);
    expect(a.wrappedPasswordKey).not.toBe(b.wrappedPasswordKey);
  });
});
