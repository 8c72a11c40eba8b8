/** Free addresses for tests: tcp ports and ipc paths no other test uses. */

const handedOut = new Set<number>();

/**
 * A tcp port on 127.0.0.1 that was free a moment ago and that this process never handed out
 * before. Drawn from below Linux's ephemeral range (32768 and up), so neither the kernel's
 * port-0 picks nor the outgoing connections of peers and adaptors can land on it: with port-0
 * picks, three calls in a row returned a repeated port about once in 3000.
 */
export function freePort(): number {
  for (let tries = 0;; tries++) {
    if (tries > 100_000) throw new Error("freePort: no free port left in 20000-31999");
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    if (handedOut.has(port) || !portIsFree(port)) continue;
    handedOut.add(port);
    return port;
  }
}

let seq = 0;

/**
 * A fresh path for an ipc socket file in /tmp; the file does not exist. `deno test` loads this
 * module afresh for every test file in one process, so the counter alone would repeat paths
 * (and meet files that an earlier file's SIGKILLed adaptor left): a random part keeps them apart.
 */
export function ipcPath(name = "q"): string {
  for (;;) {
    const random = Math.floor(Math.random() * 0x1000000).toString(16).padStart(6, "0");
    const path = `/tmp/adaptor-test-${Deno.pid}-${random}-${++seq}-${name}`;
    if (!exists(path)) return path;
  }
}

/** Whether a file exists at `path`. */
export function exists(path: string): boolean {
  try {
    Deno.lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

/** Whether a tcp port can be bound right now (nobody left it bound). */
export function portIsFree(port: number): boolean {
  try {
    Deno.listen({ hostname: "127.0.0.1", port }).close();
    return true;
  } catch {
    return false;
  }
}

/** Resolves after `ms`. */
export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Polls `check` every 20 ms until it holds; throws `what` after `ms`. */
export async function until(check: () => boolean, what: string, ms = 10_000, every = 20): Promise<void> {
  const deadline = performance.now() + ms;
  while (!check()) {
    if (performance.now() > deadline) throw new Error(`timed out after ${ms} ms: ${what}`);
    await sleep(every);
  }
}
