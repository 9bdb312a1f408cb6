/**
 * Event-loop lag as liveness sees it: a sampler ticks every 100 ms and records how late each tick
 * ran; `maxSince(t)` is the worst lag after t. One unref'd timer per process, shared by every app
 * (it must not keep the process alive). perf_hooks' monitorEventLoopDelay is not used because its
 * reset() drops the first delay after it — exactly the stall a probe must see.
 */
const INTERVAL_MS = 100;
const KEEP_MS = 10 * 60_000;

interface Sample {
  at: number;
  lagMs: number;
}

let samples: Sample[] = [];
let lastTick = 0;
let timer: NodeJS.Timeout | undefined;

function tick(): void {
  const now = Date.now();
  samples.push({ at: now, lagMs: Math.max(0, now - lastTick - INTERVAL_MS) });
  lastTick = now;
  if (samples.length > KEEP_MS / INTERVAL_MS) samples = samples.slice(-Math.floor(KEEP_MS / INTERVAL_MS / 2));
}

export function startLagSampler(): void {
  if (timer) return;
  lastTick = Date.now();
  timer = setInterval(tick, INTERVAL_MS).unref();
}

/** The worst event-loop lag seen after `since` (ms epoch), including a tick that is overdue now. */
export function maxLagSince(since: number): number {
  let max = lastTick ? Math.max(0, Date.now() - lastTick - INTERVAL_MS) : 0;
  for (let i = samples.length - 1; i >= 0 && samples[i].at > since; i--) max = Math.max(max, samples[i].lagMs);
  return max;
}
