/**
 * Memory: malloc_trim(3) once a minute gives freed heap pages back (a queue freed after a burst
 * otherwise stays resident and looks like a leak; figures in docs/reliability.md), and the
 * control group's memory limit (systemd's MemoryMax=) the queues' budget is checked against.
 */

import { libc, readSmallFile } from "./libc.ts";

/** Returns freed heap pages to the system; false where glibc's malloc_trim is not there. */
export async function trimMalloc(): Promise<boolean> {
  const c = libc();
  if (!c) return false;
  await c.malloc_trim(0n);
  return true;
}

/** A running `startMallocTrim`. */
export interface MallocTrim {
  /** Stops the timer; resolves when a trim in progress has ended. */
  stop(): Promise<void>;
}

/** Calls `trimMalloc` every `intervalMs` (one call at a time) until stopped. */
export function startMallocTrim(intervalMs = 60_000): MallocTrim {
  let inFlight: Promise<unknown> | undefined;
  const timer = setInterval(() => {
    inFlight ??= trimMalloc().catch(() => false).finally(() => inFlight = undefined);
  }, intervalMs);
  return {
    async stop() {
      clearInterval(timer);
      await inFlight;
    },
  };
}

/**
 * The memory limit of this process's control group (cgroup v2 `memory.max`, v1
 * `memory.limit_in_bytes`; systemd's MemoryMax=, a container's --memory), the lowest on the way
 * up to the root, in bytes; undefined where there is none or it cannot be read.
 */
export function memoryLimit(): number | undefined {
  const c = libc();
  if (!c) return undefined;
  const lines = (readSmallFile(c, "/proc/self/cgroup") ?? "").split("\n");
  const v2 = lines.find((l) => l.startsWith("0::"))?.slice(3);
  const v1 = lines.map((l) => /^\d+:(?:[^:]*,)?memory(?:,[^:]*)?:(.*)$/.exec(l)?.[1]).find((p) => p);
  const [root, file, path] = v1 !== undefined
    ? ["/sys/fs/cgroup/memory", "memory.limit_in_bytes", v1]
    : ["/sys/fs/cgroup", "memory.max", v2];
  if (path === undefined) return undefined;
  let lowest: number | undefined;
  for (let dir = path;; dir = dir.slice(0, dir.lastIndexOf("/"))) {
    const text = readSmallFile(c, `${root}${dir === "/" ? "" : dir}/${file}`)?.trim();
    const bytes = text && /^\d+$/.test(text) ? Number(text) : undefined;
    // v1 says "no limit" with a number near 2^63.
    if (bytes !== undefined && bytes < 2 ** 60) lowest = Math.min(lowest ?? bytes, bytes);
    if (dir === "/" || dir === "") break;
  }
  return lowest;
}
