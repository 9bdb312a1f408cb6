import express from 'express';
import request from 'supertest';
import { corsAllowList, originProblem } from '../../server/http/cors';

describe('CORS allow-list', () => {
  const app = express();
  app.use('/api', corsAllowList({ origins: ['https://app.example.com', 'http://127.0.0.1:5173'], maxAgeSeconds: 600 }));
  app.get('/api/thing', (_req, res) => {
    res.json({ ok: true });
  });

  test('an allowed origin gets exactly its origin back, with Vary: Origin', async () => {
    const res = await request(app).get('/api/thing').set('Origin', 'https://app.example.com');
    expect(res.status).toBe(200);
    expect(res.headers['access-control-allow-origin']).toBe('https://app.example.com');
    expect(res.headers['access-control-allow-credentials']).toBeUndefined();
    expect(res.headers.vary).toMatch(/Origin/);
  });

  test('other origins get no CORS headers at all (never reflected)', async () => {
    for (const origin of ['https://evil.example', 'https://app.example.com.evil.example', 'https://app.example.com:443', 'null', 'https://APP.example.com', 'http://app.example.com']) {
      const res = await request(app).get('/api/thing').set('Origin', origin);
      expect(res.headers['access-control-allow-origin']).toBeUndefined();
      expect(res.headers.vary).toMatch(/Origin/);
    }
    const none = await request(app).get('/api/thing');
    expect(none.headers['access-control-allow-origin']).toBeUndefined();
    expect(none.headers.vary).toMatch(/Origin/);
  });

  test('preflight: allowed origin gets methods, headers and max-age; others nothing', async () => {
    const ok = await request(app)
      .options('/api/thing')
      .set('Origin', 'http://127.0.0.1:5173')
      .set('Access-Control-Request-Method', 'POST')
      .set('Access-Control-Request-Headers', 'authorization, content-type');
    expect(ok.status).toBe(204);
    expect(ok.headers['access-control-allow-origin']).toBe('http://127.0.0.1:5173');
    expect(ok.headers['access-control-allow-methods']).toBe('GET, POST');
    expect(ok.headers['access-control-allow-headers']).toBe('Authorization, Content-Type');
    expect(ok.headers['access-control-max-age']).toBe('600');
    const bad = await request(app).options('/api/thing').set('Origin', 'https://evil.example').set('Access-Control-Request-Method', 'POST');
    expect(bad.headers['access-control-allow-origin']).toBeUndefined();
    expect(bad.headers['access-control-allow-methods']).toBeUndefined();
    expect(bad.headers['access-control-max-age']).toBeUndefined();
  });

  test('allow-list entries must be exact origins', () => {
    expect(originProblem('https://app.example.com')).toBeUndefined();
    expect(originProblem('http://127.0.0.1:5173')).toBeUndefined();
    expect(originProblem('*')).toMatch(/wildcard/);
    expect(originProblem('null')).toBeDefined();
    expect(originProblem('https://app.example.com/')).toMatch(/exactly/);
    expect(originProblem('https://app.example.com:443')).toMatch(/exactly/);
    expect(originProblem('https://APP.example.com')).toMatch(/exactly/);
    expect(originProblem('ftp://x.example')).toMatch(/http/);
  });
});
