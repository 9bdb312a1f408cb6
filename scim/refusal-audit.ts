/**
 * Audits refused /scim/v2 requests (4xx) as `scim.refused`, without letting a flood of bad requests
 * become a database write per request: per (token or client address, status) at most
 * ROWS_PER_MINUTE rows a minute in this process; the rest are counted and carried in the next row
 * for that key (`suppressed: n`), written at the latest when the minute ends. So every refusal is
 * accounted for: the refusals audited = Σ (1 + suppressed) over the rows.
 */
import type { Request } from 'express';
import type { Store } from '../server/repositories/store';
import type { AuditInput } from '../server/repositories/audit';
import type { MappedError } from './errors';
import { RefusalBound } from '../server/audit/refusal-bound';

export const ROWS_PER_MINUTE = 10;
const REASON_MAX = 200;

export interface RefusalAuditOptions {
  rowsPerMinute?: number;
  now?: () => number;
  onError?: (err: unknown) => void;
}

/** The bound is server/audit/refusal-bound.ts's; SCIM keys it by token (or client address) and status. */
export class ScimRefusalAudit extends RefusalBound {
  constructor(store: Store, opts: RefusalAuditOptions = {}) {
    super(store, { rowsPerMinute: opts.rowsPerMinute ?? ROWS_PER_MINUTE, now: opts.now, onError: opts.onError ?? (() => undefined) });
  }

  /** Records one refused request; resolves once its row (if one is due) is committed. Never rejects. */
  refused(req: Request, tokenId: string | undefined, mapped: MappedError): Promise<void> {
    return this.record(`${tokenId ? `token:${tokenId}` : `ip:${req.ip ?? '?'}`}|${mapped.status}`, refusalEvent(req, tokenId, mapped));
  }
}

const audits = new WeakMap<Store, ScimRefusalAudit>();

/** The one refusal auditor of this process for `store` (several apps on one store share the bound). */
export function scimRefusalAuditOf(store: Store, opts?: RefusalAuditOptions): ScimRefusalAudit {
  let a = audits.get(store);
  if (!a) audits.set(store, (a = new ScimRefusalAudit(store, opts)));
  return a;
}

/**
 * The audit event of a refusal: what was asked (method, path without the query) and why, never
 * the body or the bearer token. The reason is the error's message with every string the client
 * sent in the body, the query or the Authorization header blanked out, since messages may quote them.
 */
export function refusalEvent(req: Request, tokenId: string | undefined, mapped: MappedError): AuditInput {
  const path = `${req.baseUrl}${req.path}`.slice(0, 200);
  return {
    actor: tokenId ? `scim:${tokenId}` : 'anonymous',
    action: 'scim.refused',
    outcome: 'refused',
    requestId: req.requestId,
    ...(tokenId ? { targetType: 'token', targetId: tokenId } : {}),
    detail: {
      status: mapped.status,
      ...(mapped.body.scimType ? { scimType: mapped.body.scimType } : {}),
      method: req.method.slice(0, 10),
      path,
      reason: reasonOf(req, mapped),
      ...(tokenId ? {} : { from: String(req.ip ?? '').slice(0, 64) }),
    },
  };
}

function reasonOf(req: Request, mapped: MappedError): string {
  // body-parser's messages (and JSON.parse's) quote the body itself: a fixed reason instead.
  if (mapped.body.scimType === 'invalidSyntax' && req.body === undefined) return 'the body is not valid JSON (or not JSON)';
  if (mapped.status === 413) return 'the body is larger than the limit (CS_SCIM_MAX_BODY_BYTES)';
  let reason = mapped.body.detail;
  const sent = new Set<string>();
  collectStrings(req.body, sent);
  // A filter is quoted back in parts (an attribute, an operator, a value): its words too.
  const query = new Set<string>();
  collectStrings(req.query, query);
  for (const q of query) for (const part of [q, ...q.split(/[\s"()[\],]+/)]) sent.add(part);
  const credentials = (req.get('authorization') ?? '').replace(/^\S+\s+/, '').trim();
  if (credentials) for (const part of [credentials, ...credentials.split('.')]) sent.add(part);
  // Longest first, so a value is blanked whole rather than around a shorter one inside it.
  for (const s of [...sent].filter((v) => v.length >= 3).sort((a, b) => b.length - a.length)) reason = reason.split(s).join('…');
  return reason.length <= REASON_MAX ? reason : `${reason.slice(0, REASON_MAX - 1)}…`;
}

function collectStrings(v: unknown, into: Set<string>, depth = 0): void {
  if (into.size >= 2_000 || depth > 20) return;
  if (typeof v === 'string') into.add(v);
  else if (Array.isArray(v)) for (const x of v) collectStrings(x, into, depth + 1);
  else if (v && typeof v === 'object') for (const x of Object.values(v)) collectStrings(x, into, depth + 1);
}
