/**
 * A one-line progress bar with rate and ETA on a terminal's stderr; nothing when stderr is a pipe
 * or a file (logs stay clean). Redrawn at most ~10 times a second.
 */
export function progressBar(stream: NodeJS.WriteStream, now: () => number = Date.now): ((done: number, total: number) => void) | undefined {
  if (!stream.isTTY) return undefined;
  const start = now();
  let last = 0;
  return (done, total) => {
    const t = now();
    if (done < total && t - last < 100) return;
    last = t;
    const width = 30;
    const filled = total ? Math.min(width, Math.round((done / total) * width)) : width;
    const rate = done / Math.max((t - start) / 1000, 0.001);
    const eta = rate > 0 ? Math.ceil((total - done) / rate) : undefined;
    stream.write(`\r[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${done}/${total} ${Math.round(rate)}/s ETA ${eta === undefined ? '?' : formatSeconds(eta)}  ${done >= total ? '\n' : ''}`);
  };
}

function formatSeconds(s: number): string {
  return s >= 3600 ? `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m` : s >= 60 ? `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s` : `${s}s`;
}
