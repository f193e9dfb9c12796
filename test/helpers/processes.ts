import { type AddressInfo, createServer } from 'node:net';

/**
 * A port nothing listens on now: the kernel picks it (a fixed random range could be some other
 * connection's ephemeral port, since the tests open many).
 */
export async function freePort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', () => r()));
  const { port } = probe.address() as AddressInfo;
  await new Promise<void>((r) => probe.close(() => r()));
  return port;
}

/** Waits until a spawned server answers `/healthz`; `output()` says why it did not, on timeout. */
export async function waitUntilUp(base: string, output: () => string = () => ''): Promise<void> {
  const started = Date.now();
  for (;;) {
    try {
      if ((await fetch(`${base}/healthz`)).ok) return;
    } catch {
      // not yet
    }
    if (Date.now() - started > 60_000) throw new Error(`server did not start: ${output()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
