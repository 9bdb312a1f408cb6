/** /scim/v2/ServiceProviderConfig, /ResourceTypes, /Schemas — answered by scimmy from the declared set-up. */
import { Router } from 'express';
import { baseUrl, sendScim } from './http';
import { SCIMMY } from './schemas';

type Readable = { read: () => Promise<unknown> };

export function discoveryRouter(): Router {
  const r = Router();
  const withBase = (base: string) => {
    for (const res of [SCIMMY.Resources.ServiceProviderConfig, SCIMMY.Resources.ResourceType, SCIMMY.Resources.Schema, SCIMMY.Resources.User, SCIMMY.Resources.Group]) {
      res.basepath(base);
    }
  };
  r.get('/ServiceProviderConfig', async (req, res) => {
    withBase(baseUrl(req));
    sendScim(res, 200, await (new SCIMMY.Resources.ServiceProviderConfig() as unknown as Readable).read());
  });
  r.get('/ResourceTypes', async (req, res) => {
    withBase(baseUrl(req));
    sendScim(res, 200, await (new SCIMMY.Resources.ResourceType() as unknown as Readable).read());
  });
  r.get('/ResourceTypes/:id', async (req, res) => {
    withBase(baseUrl(req));
    sendScim(res, 200, await (new SCIMMY.Resources.ResourceType(req.params.id) as unknown as Readable).read());
  });
  r.get('/Schemas', async (req, res) => {
    withBase(baseUrl(req));
    sendScim(res, 200, await (new SCIMMY.Resources.Schema() as unknown as Readable).read());
  });
  r.get('/Schemas/:id', async (req, res) => {
    withBase(baseUrl(req));
    sendScim(res, 200, await (new SCIMMY.Resources.Schema(req.params.id) as unknown as Readable).read());
  });
  return r;
}
