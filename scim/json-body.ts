/**
 * A SCIM response body as UTF-8 bytes, exactly JSON.stringify(body) (issue 10).
 *
 * A list page (~195 KB for 100 users with their keys) stringified whole is a rope of parts: measuring
 * its bytes flattened it (~0.7 ms) and res.end(string) encoded it to UTF-8 a second time. A list
 * envelope — an object whose last member is `Resources`, an array — is instead encoded resource by
 * resource: one small string each, encoded once, and its length is the sum of the chunks'.
 */

/** Its UTF-8 chunks, in order; their concatenation is Buffer.from(JSON.stringify(body)). */
export function jsonChunks(body: unknown): Buffer[] {
  const resources = listResources(body);
  if (!resources) return [Buffer.from(JSON.stringify(body) ?? '')];
  const { Resources: _r, ...head } = body as Record<string, unknown>;
  void _r;
  const members = JSON.stringify(head).slice(0, -1);
  let open = `${members}${members.length > 1 ? ',' : ''}"Resources":[`;
  if (resources.length === 0) return [Buffer.from(`${open}]}`)];
  const chunks: Buffer[] = [];
  for (let i = 0; i < resources.length; i++) {
    // As in any JSON array, a member with no JSON form (undefined, a function) is null.
    const json = JSON.stringify(resources[i]) ?? 'null';
    const last = i === resources.length - 1;
    chunks.push(Buffer.from(`${open}${json}${last ? ']}' : ''}`));
    open = ',';
  }
  return chunks;
}

/**
 * The Resources of a list envelope, when stringifying them one by one gives the same bytes (a
 * member's own toJSON would be called with '' rather than its index: none of ours reads it).
 */
function listResources(body: unknown): unknown[] | undefined {
  if (typeof body !== 'object' || body === null || Array.isArray(body) || Object.getPrototypeOf(body) !== Object.prototype) return undefined;
  const o = body as Record<string, unknown>;
  if (typeof o.toJSON === 'function') return undefined;
  const keys = Object.keys(o);
  const resources = o.Resources;
  if (keys[keys.length - 1] !== 'Resources' || !Array.isArray(resources) || Object.getPrototypeOf(resources) !== Array.prototype) return undefined;
  if (typeof (resources as { toJSON?: unknown }).toJSON === 'function') return undefined;
  return resources;
}
