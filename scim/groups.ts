/** /scim/v2/Groups */
import { Router } from 'express';
import { attributeFilter, baseUrl, listParams, opContext, present, presentList, sendScim, wantsMemberKeys, wantsMembers } from './http';
import type { ScimService } from './service';

export function groupsRouter(service: ScimService): Router {
  const r = Router();
  r.get('/', async (req, res) => {
    const params = { ...listParams(req), withMembers: wantsMembers(req) };
    sendScim(res, 200, presentList('Group', await service.listGroups(params), baseUrl(req), attributeFilter(req), wantsMemberKeys(req)));
  });
  r.post('/', async (req, res) => {
    const attrs = attributeFilter(req);
    const resource = await service.createGroup(req.body, opContext(req, res));
    res.setHeader('Location', `${baseUrl(req)}/Groups/${String(resource.id)}`);
    sendScim(res, 201, present('Group', resource, baseUrl(req), attrs, wantsMemberKeys(req)));
  });
  r.get('/:id', async (req, res) => {
    sendScim(res, 200, present('Group', await service.getGroup(req.params.id, wantsMembers(req)), baseUrl(req), attributeFilter(req), wantsMemberKeys(req)));
  });
  r.put('/:id', async (req, res) => {
    sendScim(res, 200, present('Group', await service.replaceGroup(req.params.id, req.body, opContext(req, res)), baseUrl(req), attributeFilter(req), wantsMemberKeys(req)));
  });
  r.patch('/:id', async (req, res) => {
    const resource = await service.patchGroup(req.params.id, req.body, opContext(req, res), wantsMembers(req));
    sendScim(res, 200, present('Group', resource, baseUrl(req), attributeFilter(req), wantsMemberKeys(req)));
  });
  r.delete('/:id', async (req, res) => {
    await service.deleteGroup(req.params.id, opContext(req, res));
    res.status(204).end();
  });
  return r;
}
