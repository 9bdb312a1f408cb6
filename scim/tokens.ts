/**
 * Bearer tokens for machine clients (the IdP's SCIM connector). A token is
 * "cst_<id>.<secret>": the id finds the row, the secret is checked against its stored SHA-256 with
 * a constant-time comparison. The token is shown once at creation and never stored. SHA-256
 * suffices because the secret is 256 random bits (nothing to brute-force, unlike a password).
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { BlockList, isIP } from 'node:net';
import type { ApiTokenRow } from '../entities/scim';
import { ForbiddenError, UnauthorizedError, ValidationError } from '../server/errors';
import type { ApiTokenRepository } from './repositories/api-tokens';
import type { TokenReads } from './repositories/token-reads';
import type { Runner } from '../server/repositories/runner';

/** `scim`: the IdP's provisioning connector; `backend`: the cloud service's own API (/backend/v1). */
export const TOKEN_SCOPES = ['scim', 'backend'] as const;
export type TokenScope = (typeof TOKEN_SCOPES)[number];

const TOKEN_RE = /^cst_([0-9a-f]{24})\.([A-Za-z0-9_-]{43})$/;

export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret, 'utf8').digest('hex');
}

export function parseToken(token: string): { id: string; secret: string } | undefined {
  const m = TOKEN_RE.exec(token);
  return m ? { id: m[1], secret: m[2] } : undefined;
}

/** Parses an allow-list ("10.0.0.0/8, 192.0.2.7, 2001:db8::/32"); throws naming the bad entry. */
function parseAddressList(list: string): string[] {
  const entries = list.split(',').map((e) => e.trim()).filter(Boolean);
  for (const e of entries) {
    const [ip, bits, extra] = e.split('/');
    const family = isIP(ip);
    const prefix = bits === undefined ? 0 : Number(bits);
    if (!family || extra !== undefined || (bits !== undefined && !(/^\d+$/.test(bits) && prefix <= (family === 4 ? 32 : 128)))) {
      throw new ValidationError(`"${e.slice(0, 60)}" is not an IP address or CIDR range (e.g. 192.0.2.7, 10.0.0.0/8, 2001:db8::/32)`);
    }
  }
  return entries;
}

/** Whether `address` (as Express reports it; IPv4-mapped IPv6 included) is in the allow-list. */
function addressAllowed(list: string, address: string | undefined): boolean {
  if (!address) return false;
  const ip = address.startsWith('::ffff:') && isIP(address.slice(7)) === 4 ? address.slice(7) : address;
  const family = isIP(ip);
  if (!family) return false;
  const allowed = new BlockList();
  for (const e of parseAddressList(list)) {
    const [net, bits] = e.split('/');
    const type = isIP(net) === 4 ? 'ipv4' : 'ipv6';
    if (bits === undefined) allowed.addAddress(net, type);
    else allowed.addSubnet(net, Number(bits), type);
  }
  return allowed.check(ip, family === 4 ? 'ipv4' : 'ipv6');
}

export type PublicTokenInfo = Omit<ApiTokenRow, 'secret_hash'>;

const nowIso = () => new Date().toISOString();

export class TokenService {
  /** A hash to compare against when the id is unknown, so both paths do the same work. */
  private readonly decoy = hashSecret(randomBytes(32).toString('base64url'));

  /** `reads`: the per-request lookup on the driver (repositories/token-reads.ts); without it, through `run`. */
  constructor(
    private readonly run: Runner<ApiTokenRepository>,
    private readonly reads?: TokenReads,
  ) {}

  async create(input: { name: string; scope: string; expiresAt?: Date; allowedAddresses?: string }): Promise<{ token: string; info: PublicTokenInfo }> {
    if (!(TOKEN_SCOPES as readonly string[]).includes(input.scope)) {
      throw new ValidationError(`unknown token scope "${input.scope}"; known scopes: ${TOKEN_SCOPES.join(', ')}`);
    }
    const name = input.name.trim();
    if (!name || name.length > 200) throw new ValidationError('token name must be 1 to 200 characters');
    const allowed = input.allowedAddresses === undefined ? null : parseAddressList(input.allowedAddresses).join(',');
    if (allowed !== null && (!allowed || allowed.length > 1000)) throw new ValidationError('the address allow-list must name 1 to 1000 characters of addresses');
    const id = randomBytes(12).toString('hex');
    const secret = randomBytes(32).toString('base64url');
    const row: ApiTokenRow = {
      id,
      name,
      scope: input.scope,
      secret_hash: hashSecret(secret),
      created_at: nowIso(),
      last_used_at: null,
      expires_at: input.expiresAt ? input.expiresAt.toISOString() : null,
      revoked_at: null,
      ...(allowed !== null ? { allowed_addresses: allowed } : {}),
    };
    await this.run((r) => r.insert(row));
    const { secret_hash: _hash, ...info } = row;
    void _hash;
    return { token: `cst_${id}.${secret}`, info };
  }

  async list(): Promise<PublicTokenInfo[]> {
    return (await this.run((r) => r.list())).map(({ secret_hash: _h, ...info }) => info);
  }

  /**
   * Revokes by id, or by name when exactly one live token has it (a rotation leaves two tokens
   * with the IdP's name: revoking "by name" must not take out the new one). `allWithName` revokes
   * every live token with that name. Returns the revoked ids, or the candidates when ambiguous.
   */
  async revoke(idOrName: string, opts: { allWithName?: boolean } = {}): Promise<{ revoked: string[]; ambiguous?: string[] }> {
    const at = nowIso();
    return this.run(async (repo) => {
      if (await repo.revoke(idOrName, at)) return { revoked: [idOrName] };
      const live = (await repo.findByName(idOrName)).filter((r) => r.revoked_at === null);
      if (live.length > 1 && !opts.allWithName) return { revoked: [], ambiguous: live.map((r) => r.id) };
      const revoked: string[] = [];
      for (const row of live) if (await repo.revoke(row.id, at)) revoked.push(row.id);
      return { revoked };
    });
  }

  /**
   * Checks an Authorization header value; returns the token row or throws UnauthorizedError. A
   * token with an address allow-list is refused from any other `clientAddress`.
   */
  async authenticate(authorization: string | undefined, scope: TokenScope, clientAddress?: string): Promise<PublicTokenInfo> {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? '');
    if (!m) throw new UnauthorizedError('a bearer token is required');
    const parsed = parseToken(m[1]);
    const row = !parsed ? null : this.reads ? await this.reads(parsed.id) : await this.run((r) => r.findById(parsed.id));
    const expected = Buffer.from(row?.secret_hash ?? this.decoy, 'hex');
    const given = Buffer.from(hashSecret(parsed?.secret ?? ''), 'hex');
    const match = timingSafeEqual(expected, given) && row !== null;
    const now = nowIso();
    if (!match || !row || row.revoked_at !== null || (row.expires_at !== null && row.expires_at <= now) || row.scope !== scope) {
      throw new UnauthorizedError('the bearer token is invalid, revoked or expired');
    }
    if (row.allowed_addresses && !addressAllowed(row.allowed_addresses, clientAddress)) {
      throw new ForbiddenError('this token is not accepted from this client address', { internalDetail: `token ${row.id} from ${String(clientAddress).slice(0, 64)}` });
    }
    // Record use at most once a minute per token to keep writes down.
    if (!row.last_used_at || row.last_used_at.slice(0, 16) !== now.slice(0, 16)) await this.run((r) => r.touch(row.id, now));
    const { secret_hash: _h, ...info } = row;
    void _h;
    return info;
  }
}
