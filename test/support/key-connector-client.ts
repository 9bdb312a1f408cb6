import { randomBytes } from 'node:crypto';

/**
 * The Key Connector requests exactly as the Bitwarden clients send them
 * (bitwarden/clients libs/common/src/services/api.service.ts, getMasterKeyFromKeyConnector /
 * postUserKeyToKeyConnector): `fetch(<url> + "/user-keys")` with `Accept: application/json`,
 * `Authorization: Bearer <token>` and, for writes, `Content-Type: application/json; charset=utf-8`.
 * `url` is read on each call, so a suite may pass a getter set in beforeAll.
 */
export function keyConnectorClient(url: () => string) {
  const getKey = (token: string, extra: Record<string, string> = {}) =>
    fetch(`${url()}/user-keys`, { cache: 'no-store', method: 'GET', headers: { Accept: 'application/json', Authorization: `Bearer ${token}`, ...extra } });
  const sendKey = (method: 'POST' | 'PUT', token: string, body: string) =>
    fetch(`${url()}/user-keys`, { cache: 'no-store', method, headers: { Accept: 'application/json', Authorization: `Bearer ${token}`, 'Content-Type': 'application/json; charset=utf-8' }, body });

  /** A new user's first key: GET 404 → POST 200 (empty) → GET 200 {"key"}, no-store. Returns the key. */
  const storeFirstKey = async (token: string): Promise<string> => {
    expect((await getKey(token)).status).toBe(404);
    const key = randomBytes(32).toString('base64');
    const post = await sendKey('POST', token, JSON.stringify({ key }));
    expect(post.status).toBe(200);
    expect(await post.text()).toBe('');
    const got = await getKey(token);
    expect(got.status).toBe(200);
    expect(got.headers.get('cache-control')).toBe('no-store');
    expect(await got.json()).toEqual({ key });
    return key;
  };

  return { getKey, sendKey, storeFirstKey };
}
