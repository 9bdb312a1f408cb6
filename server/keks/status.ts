import { decodeEnvelope } from '../../kms-adapters/envelope';
import { schemeOf } from '../../kms-adapters/types';
import { KekEntity } from '../../entities';
import type { Store } from '../repositories/store';
import { ENVELOPE_SOURCES, type EnvelopeSource, type RowKey } from './sources';

/**
 * `keks status`: how many stored envelopes sit under each KEK and key version, per table — read
 * from the envelopes themselves (they name their KEK and version), a page at a time. Per-user KEKs
 * (one per user) are summed per provider, or a per-user deployment would print a line per user.
 */
export interface StatusLine {
  table: string;
  /** A KEK URI, or "<scheme> per-user KEKs (N keys)". */
  kek: string;
  keyVersion: string;
  count: number;
}

const PAGE = 1000;

export async function envelopeStatus(store: Store, sources: readonly EnvelopeSource[] = ENVELOPE_SOURCES): Promise<StatusLine[]> {
  const m = store.repos.manager;
  const perUser = new Set((await m.find(KekEntity, { where: { ownerType: 'user' }, select: { uri: true } })).map((k) => k.uri));
  const lines: StatusLine[] = [];
  for (const s of sources) {
    const counts = new Map<string, { kek: string; keyVersion: string; count: number; keys: Set<string> }>();
    let after: RowKey | undefined;
    for (;;) {
      const rows = await s.page(m, { all: true }, PAGE, after);
      if (rows.length === 0) break;
      after = rows[rows.length - 1].key;
      for (const r of rows) {
        let kek: string;
        let keyVersion: string;
        try {
          const e = decodeEnvelope(r.envelope);
          const own = perUser.has(e.kekUri);
          kek = own ? `${schemeOf(e.kekUri)} per-user KEKs` : e.kekUri;
          keyVersion = own ? '*' : (e.keyVersion ?? '-');
          const c = counts.get(`${kek}\n${keyVersion}`) ?? { kek, keyVersion, count: 0, keys: new Set<string>() };
          c.count++;
          if (own) c.keys.add(e.kekUri);
          counts.set(`${kek}\n${keyVersion}`, c);
        } catch {
          const c = counts.get('malformed') ?? { kek: '(not an envelope)', keyVersion: '-', count: 0, keys: new Set<string>() };
          c.count++;
          counts.set('malformed', c);
        }
      }
    }
    for (const c of [...counts.values()].sort((a, b) => a.kek.localeCompare(b.kek) || a.keyVersion.localeCompare(b.keyVersion))) {
      lines.push({ table: s.table, kek: c.keys.size ? `${c.kek} (${c.keys.size} keys)` : c.kek, keyVersion: c.keyVersion, count: c.count });
    }
  }
  return lines;
}
