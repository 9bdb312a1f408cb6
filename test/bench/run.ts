import { benchCore } from './core-bench';
import { benchPkcs11 } from './pkcs11-bench';
import { benchPkcs11KeyService } from './pkcs11-key-service-bench';
import { benchCloudKms } from './cloud-kms-bench';
import { benchKeyApi } from './key-api-bench';
import { benchScim } from './scim-bench';
import { printFigures } from './measure';
import { benchRewrap } from './rewrap-bench';
import { httpBenchMain } from './http-bench';
import { benchAuditVerify } from './audit-bench';

/**
 * `npm run bench`: prints figures for this machine. Benchmarks measure; they never assert.
 * `npm run bench -- http [options]` runs the HTTP benchmark instead (see http-bench.ts).
 */
async function main(): Promise<void> {
  if (process.argv[2] === 'http') return httpBenchMain(process.argv.slice(3));
  console.log(`# Crypto Server benchmarks — node ${process.version}, ${new Date().toISOString()}`);
  printFigures('Key service (local adapter) and bare primitives', await benchCore());
  printFigures('Key service (PKCS#11 adapter, SoftHSM2)', await benchPkcs11KeyService());
  const p = await benchPkcs11();
  console.log('\n## PKCS#11 adapter vs bare pkcs11js (SoftHSM2)');
  console.log(`| adapter unwraps/s (4 in flight) | bare C_DecryptInit+C_Decrypt/s (the limit) |\n|---:|---:|\n| ${p.unwrapsPerSecond.toFixed(0)} | ${p.rawUnwrapsPerSecond.toFixed(0)} |`);
  printFigures('SCIM over HTTP (SQLite, local KEK)', await benchScim());
  const k = await benchKeyApi();
  console.log(`\n## Key API over HTTP (token check, local KMS unwrap, audit write; ${k.concurrency} in flight)`);
  console.log('| server | req/s | p50 ms | p99 ms |\n|---|---:|---:|---:|');
  console.log(`| Crypto Server POST /api/keys/password-key/unwrap | ${k.rps.toFixed(0)} | ${k.p50ms.toFixed(2)} | ${k.p99ms.toFixed(2)} |`);
  console.log(`| bare node:http doing only the same unwrap (the limit) | ${k.bareRps.toFixed(0)} | ${k.bareP50ms.toFixed(2)} | ${k.bareP99ms.toFixed(2)} |`);
  console.log('\n## keks rewrap, local KEK → another local KEK (unwrap + wrap, compare-and-set, audit per batch)');
  console.log('| database | envelopes | s | envelopes/s |\n|---|---:|---:|---:|');
  for (const r of await benchRewrap()) console.log(`| ${r.database} | ${r.envelopes} | ${r.seconds.toFixed(2)} | ${r.perSecond.toFixed(0)} |`);
  console.log('\n## audit verify (every hash recomputed, one KMS seal opened; 5,000 rows a page)');
  console.log('| database | rows | s | rows/s |\n|---|---:|---:|---:|');
  for (const r of await benchAuditVerify()) console.log(`| ${r.database} | ${r.rows} | ${r.seconds.toFixed(2)} | ${r.perSecond.toFixed(0)} |`);
  console.log('\n## Cloud KMS adapters against their local emulators (unwrap, 8 in flight)');
  console.log('| provider | adapter req/s | p50 ms | p99 ms | direct SDK req/s (the limit) |\n|---|---:|---:|---:|---:|');
  for (const r of await benchCloudKms()) console.log(`| ${r.provider} | ${r.adapterRps.toFixed(0)} | ${r.p50ms.toFixed(2)} | ${r.p99ms.toFixed(2)} | ${r.directSdkRps.toFixed(0)} |`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
