/** /scim/v2/Users */
import { Router } from 'express';
import { attributeFilter, baseUrl, listParams, opContext, present, presentUserList, sendScim } from './http';
import type { ScimService } from './service';

export function usersRouter(service: ScimService): Router {
  const r = Router();
  r.get('/', async (req, res) => {
    const params = listParams(req);
    const attrs = attributeFilter(req);
    sendScim(res, 200, presentUserList(await service.listUserPage(params), baseUrl(req), attrs));
  });
  r.post('/', async (req, res) => {
    const attrs = attributeFilter(req);
    const resource = await service.createUser(req.body, opContext(req, res));
    res.setHeader('Location', `${baseUrl(req)}/Users/${String(resource.id)}`);
    sendScim(res, 201, present('User', resource, baseUrl(req), attrs));
  });
  r.get('/:id', async (req, res) => {
    sendScim(res, 200, present('User', await service.getUser(req.params.id), baseUrl(req), attributeFilter(req)));
  });
  r.put('/:id', async (req, res) => {
    sendScim(res, 200, present('User', await service.replaceUser(req.params.id, req.body, opContext(req, res)), baseUrl(req), attributeFilter(req)));
  });
  r.patch('/:id', async (req, res) => {
    sendScim(res, 200, present('User', await service.patchUser(req.params.id, req.body, opContext(req, res)), baseUrl(req), attributeFilter(req)));
  });
  r.delete('/:id', async (req, res) => {
    await service.deleteUser(req.params.id, opContext(req, res));
    res.status(204).end();
  });
  return r;
}
