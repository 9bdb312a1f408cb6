/** /scim/v2/ServiceProviderConfig, /ResourceTypes, /Schemas — answered by scimmy from the declared set-up. */
import { Router, type Request, type Response } from 'express';
import { ScimError } from './errors';
import { baseUrl, sendScim } from './http';
import { SCIMMY } from './schemas';

type Readable = { read: () => Promise<unknown> };

export function discoveryRouter(): Router {
  const r = Router();
  // scimmy keeps the base URL in module-wide state: set it and read under one queue, so two
  // requests for different hosts cannot see each other's locations.
  let queue: Promise<unknown> = Promise.resolve();
  const answer = (make: (req: Request) => unknown) => async (req: Request, res: Response) => {
    const run = queue.then(async () => {
      const base = baseUrl(req);
      for (const resource of [SCIMMY.Resources.ServiceProviderConfig, SCIMMY.Resources.ResourceType, SCIMMY.Resources.Schema, SCIMMY.Resources.User, SCIMMY.Resources.Group]) {
        resource.basepath(base);
      }
      return (make(req) as Readable).read();
    });
    queue = run.catch(() => undefined);
    sendScim(res, 200, await run);
  };
  r.get('/ServiceProviderConfig', answer(() => new SCIMMY.Resources.ServiceProviderConfig()));
  r.get('/ResourceTypes', answer(() => new SCIMMY.Resources.ResourceType()));
  r.get('/ResourceTypes/:id', answer((req) => new SCIMMY.Resources.ResourceType(String(req.params.id))));
  r.get('/Schemas', answer(() => new SCIMMY.Resources.Schema()));
  r.get('/Schemas/:id', answer((req) => new SCIMMY.Resources.Schema(String(req.params.id))));
  // Read-only endpoints: any other method is 405 with Allow (RFC 9110 §15.5.6), in the SCIM error format.
  r.all(['/ServiceProviderConfig', '/ResourceTypes', '/ResourceTypes/:id', '/Schemas', '/Schemas/:id'], (req, res, next) => {
    res.setHeader('Allow', 'GET, HEAD');
    next(new ScimError(405, undefined, `${req.method} is not allowed on ${req.path}: discovery endpoints are read-only`));
  });
  return r;
}
