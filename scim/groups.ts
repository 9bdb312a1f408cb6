/** /scim/v2/Groups */
import { Router, type Request } from 'express';
import type { GroupPatchResponse } from '../server/config/scim';
import { attributeFilter, baseUrl, listParams, opContext, present, presentList, queryParam, sendScim, wantsMemberKeys, wantsMembers } from './http';
import type { ScimService } from './service';

/**
 * Whether a PATCH answers with the group (200) or without a body (204). RFC 7644 §3.5.2 allows
 * either. The group, members included, is O(group) to read and send, so by default
 * (CS_SCIM_GROUP_PATCH_RESPONSE=no-content) it is sent only when the client asks for a
 * representation with `attributes` or `excludedAttributes`. The IdPs take 204:
 * - Entra ID's tutorial answers its group PATCH examples (add, remove members) with 204:
 *   https://learn.microsoft.com/en-us/entra/identity/app-provisioning/use-scim-to-provision-users-and-groups
 *   and Microsoft's provisioning team: "a 204 response to a PATCH is perfectly fine":
 *   https://learn.microsoft.com/en-us/answers/questions/1389417/azure-ad-scim-provisioning-expected-response-for-r
 * - Okta's reference, under "Update specific Group membership": "The SCIM server response to
 *   PATCH method requests can also be a HTTP 204 response, with no body returned."
 *   https://developer.okta.com/docs/api/openapi/okta-scim/guides/scim-20
 */
function wantsPatchResource(req: Request, setting: GroupPatchResponse): boolean {
  return setting === 'resource' || queryParam(req, 'attributes') !== undefined || queryParam(req, 'excludedAttributes') !== undefined;
}

export function groupsRouter(service: ScimService, patchResponse: GroupPatchResponse = 'no-content'): Router {
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
    if (!wantsPatchResource(req, patchResponse)) {
      await service.patchGroup(req.params.id, req.body, opContext(req, res));
      res.status(204).end();
      return;
    }
    const attrs = attributeFilter(req);
    const resource = await service.patchGroup(req.params.id, req.body, opContext(req, res), { withMembers: wantsMembers(req) });
    sendScim(res, 200, present('Group', resource!, baseUrl(req), attrs, wantsMemberKeys(req)));
  });
  r.delete('/:id', async (req, res) => {
    await service.deleteGroup(req.params.id, opContext(req, res));
    res.status(204).end();
  });
  return r;
}
