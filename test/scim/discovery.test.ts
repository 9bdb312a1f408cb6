import { createHash } from 'node:crypto';
import request from 'supertest';
import { scimContext, type ScimTestContext } from './support';

describe('SCIM discovery', () => {
  let ctx: ScimTestContext;
  beforeAll(async () => {
    ctx = await scimContext('sqlite');
  });
  afterAll(async () => {
    await ctx?.cleanup();
  });

  it('ServiceProviderConfig advertises only what works', async () => {
    const res = await ctx.get('/ServiceProviderConfig').expect(200);
    expect(res.headers['content-type']).toMatch(/^application\/scim\+json/);
    expect(res.body).toMatchObject({
      schemas: ['urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig'],
      patch: { supported: true },
      bulk: { supported: false },
      filter: { supported: true, maxResults: 1000 },
      changePassword: { supported: false },
      sort: { supported: true },
      etag: { supported: false },
    });
    expect(res.body.authenticationSchemes[0]).toMatchObject({ type: 'oauthbearertoken' });
  });

  it('sends no ETag, as it advertises, so If-None-Match never turns a read into 304', async () => {
    await ctx.post('/Users', { schemas: ['urn:ietf:params:scim:schemas:core:2.0:User'], userName: 'etag.probe@example.com', active: true }).expect(201);
    for (const path of ['/Users?filter=userName%20eq%20%22etag.probe@example.com%22', '/Users?startIndex=1&count=5', '/ServiceProviderConfig']) {
      const first = await ctx.get(path).expect(200);
      expect(first.headers.etag).toBeUndefined();
      expect(Number(first.headers['content-length'])).toBe(Buffer.byteLength(first.text));
      expect(first.headers['content-type']).toBe('application/scim+json; charset=utf-8');
      // Express's weak body-hash ETag (what was sent before) must not be honoured either.
      const weak = `W/"${Buffer.byteLength(first.text).toString(16)}-${createHash('sha1').update(first.text).digest('base64').substring(0, 27)}"`;
      await ctx.get(path).set('If-None-Match', weak).expect(200);
    }
    const head = await request(ctx.app).head('/scim/v2/ServiceProviderConfig').set('Authorization', `Bearer ${ctx.token}`);
    expect(head.status).toBe(200);
    expect(head.text ?? '').toBe('');
  });

  it('ResourceTypes and Schemas include our read-only key extensions', async () => {
    const types = await ctx.get('/ResourceTypes').expect(200);
    expect(types.body.totalResults).toBe(2);
    const user = types.body.Resources.find((r: { name: string }) => r.name === 'User');
    expect(user.endpoint).toBe('/Users');
    expect(user.schemaExtensions.map((e: { schema: string }) => e.schema)).toEqual([
      'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User',
      'urn:ietf:params:scim:schemas:extension:cryptoserver:2.0:UserKeys',
    ]);
    await ctx.get('/ResourceTypes/Group').expect(200);
    const schema = await ctx.get('/Schemas/urn:ietf:params:scim:schemas:extension:cryptoserver:2.0:UserKeys').expect(200);
    expect(schema.body.attributes.map((a: { name: string; mutability: string }) => [a.name, a.mutability])).toEqual([
      ['keyAlgorithm', 'readOnly'],
      ['publicKeyJwk', 'readOnly'],
      ['encryptedPrivateKey', 'readOnly'],
      ['wrappedPasswordKey', 'readOnly'],
      ['kekUri', 'readOnly'],
    ]);
    const all = await ctx.get('/Schemas').expect(200);
    expect(all.body.totalResults).toBeGreaterThanOrEqual(5);
  });

  it('requires the token too', async () => {
    await request(ctx.app).get('/scim/v2/ServiceProviderConfig').expect(401);
  });
});

describe('CS_SCIM_BASE_URL', () => {
  let ctx: ScimTestContext;
  beforeAll(async () => {
    ctx = await scimContext('sqlite', { CS_SCIM_BASE_URL: 'https://crypto.example.com/scim/v2' });
  });
  afterAll(async () => {
    await ctx?.cleanup();
  });

  it('sets meta.location and Location behind a TLS-terminating proxy', async () => {
    const res = await ctx.post('/Users', { schemas: ['urn:ietf:params:scim:schemas:core:2.0:User'], userName: 'loc@example.com' }).expect(201);
    expect(res.headers.location).toBe(`https://crypto.example.com/scim/v2/Users/${res.body.id}`);
    expect(res.body.meta.location).toBe(res.headers.location);
  });
});
