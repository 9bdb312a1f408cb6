import autocannon from 'autocannon';
import { summarize, type LoadResult, type LoadSpec } from './load';
import { pacedLoad } from './paced-load';

/**
 * The load generator, run as its own process so it never shares a CPU queue with the server it
 * measures: reads a LoadSpec as JSON on stdin, drives the target with autocannon, prints a
 * LoadResult as JSON on stdout. Latencies are kept per response (autocannon's own histogram rounds
 * to whole milliseconds).
 */
async function main(): Promise<void> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  const spec = JSON.parse(Buffer.concat(chunks).toString('utf8')) as LoadSpec;
  const cpu = process.cpuUsage();
  const print = (r: LoadResult) => {
    const used = process.cpuUsage(cpu);
    const answered = r.ok + r.failed;
    const generatorCpuMsPerRequest = answered ? (used.user + used.system) / 1000 / answered : undefined;
    process.stdout.write(JSON.stringify({ ...r, generatorCpuMsPerRequest }));
  };
  if (spec.paced && spec.rate) return print(await pacedLoad(spec));
  let i = 0;
  const latencies: number[] = [];
  const statuses: Record<string, number> = {};
  const result = await new Promise<autocannon.Result>((resolve, reject) => {
    const instance = autocannon(
      {
        url: spec.url,
        connections: spec.connections,
        duration: spec.seconds,
        timeout: spec.timeoutSeconds ?? 30,
        ...(spec.maxRequests ? { maxOverallRequests: spec.maxRequests } : {}),
        ...(spec.rate ? { overallRate: spec.rate } : {}),
        requests: [
          {
            setupRequest: (req) => {
              const n = i++;
              const v = spec.variants[n % spec.variants.length]!;
              const seq = `${spec.runId}-${n}`;
              return { ...req, method: spec.method, headers: spec.headers, path: v.path.replaceAll('{{seq}}', seq), ...(v.body !== undefined ? { body: v.body.replaceAll('{{seq}}', seq) } : {}) };
            },
          },
        ],
      },
      (err, res) => (err ? reject(err) : resolve(res)),
    );
    instance.on('response', (_client, statusCode, _bytes, responseTime) => {
      statuses[statusCode] = (statuses[statusCode] ?? 0) + 1;
      if (statusCode >= 200 && statusCode < 300) latencies.push(responseTime);
    });
  });
  print(summarize(
    latencies.map((l) => Math.round(l * 1000) / 1000),
    { failed: result.non2xx + result.errors + result.timeouts, statuses, seconds: result.duration },
  ));
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
