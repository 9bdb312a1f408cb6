import { request } from 'node:http';
import { delay, listen } from '../emulators/common';

/**
 * The KMS emulators' `delay` fault holds a request open to simulate a hung KMS. The client gives up
 * long before; the held request's timer must end with the emulator, or it keeps the jest worker
 * alive after the file's last test ("a worker process has failed to exit gracefully").
 */
async function until(check: () => boolean): Promise<void> {
  for (let i = 0; i < 400 && !check(); i++) await new Promise((r) => setTimeout(r, 5));
  expect(check()).toBe(true);
}

test('closing an emulator cancels a request held by a delay fault: its timer never fires', async () => {
  let held = false;
  let resumed = false;
  const running = await listen(async (_req, _body, res) => {
    held = true;
    await delay(200);
    resumed = true;
    res.end('late');
  });
  const req = request(running.url, { method: 'POST' });
  req.on('error', () => undefined); // the emulator closes the connection
  req.end('{}');
  await until(() => held);
  await running.close();
  req.destroy();
  await new Promise((r) => setTimeout(r, 400));
  expect(resumed).toBe(false);
});

test('a delay outside any emulator request still resolves after its time', async () => {
  const t0 = Date.now();
  await delay(20);
  expect(Date.now() - t0).toBeGreaterThanOrEqual(15);
});
