import { progressBar } from '../../server/keks/progress';

/** The rewrap progress bar: only on a terminal; rate and ETA from the elapsed time. */
function fakeStream(isTTY: boolean) {
  const writes: string[] = [];
  return { stream: { isTTY, write: (s: string) => writes.push(s) } as unknown as NodeJS.WriteStream, writes };
}

test('draws done/total, rate and ETA on a terminal, ending with a newline', () => {
  let now = 10_000;
  const { stream, writes } = fakeStream(true);
  const bar = progressBar(stream, () => now)!;
  now += 2_000;
  bar(500, 2_000);
  expect(writes.at(-1)).toMatch(/^\r\[#{8}-{22}\] 500\/2000 250\/s ETA 6s {2}$/);
  now += 50;
  bar(510, 2_000); // redrawn at most every 100 ms
  expect(writes).toHaveLength(1);
  now += 400_000;
  bar(1_000, 2_000);
  expect(writes.at(-1)).toContain('1000/2000 2/s ETA 6m43s');
  bar(2_000, 2_000);
  expect(writes.at(-1)).toMatch(/\] 2000\/2000 \d+\/s ETA 0s {2}\n$/);
});

test('draws nothing when stderr is a pipe or a file', () => {
  expect(progressBar(fakeStream(false).stream)).toBeUndefined();
});
