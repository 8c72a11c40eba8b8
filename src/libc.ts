/**
 * The few C library calls Deno has no API for, through FFI on glibc's libc.so.6. Where that
 * library cannot be opened (musl), each does nothing and says so by its result.
 *
 * - access(2): may this process write into a directory, as the kernel decides it (mode bits
 *   alone do not tell: root, read-only mounts, immutable directories). Used to notice that the
 *   ipc directory turned unwritable.
 * - malloc_trim(3): give freed heap pages back to the system. A subscriber that falls behind
 *   makes the XPUB queue up to --sndhwm messages for it, in libzmq's (glibc) heap; once they are
 *   freed glibc keeps most of those pages. Measured: after a 100 000-message burst, 41 of
 *   46 MiB stayed resident for good; malloc_trim(0) returned them. Without it, RSS after a
 *   burst looks like a leak to whoever watches it.
 * - getrlimit(2)/setrlimit(2) on RLIMIT_NOFILE: raise the soft descriptor limit to the hard
 *   one at start (see `raiseFileLimit`).
 */

const W_OK = 2;
const X_OK = 1;

const REASONS: Readonly<Record<number, string>> = {
  1: "operation not permitted (immutable?)",
  2: "no such file or directory",
  13: "permission denied",
  30: "read-only file system",
};

const SYMBOLS = {
  access: { parameters: ["buffer", "i32"], result: "i32" },
  __errno_location: { parameters: [], result: "pointer" },
  // Walks every arena under its lock: off the JS thread.
  malloc_trim: { parameters: ["usize"], result: "i32", nonblocking: true },
  getrlimit: { parameters: ["i32", "buffer"], result: "i32" },
  setrlimit: { parameters: ["i32", "buffer"], result: "i32" },
} as const satisfies Deno.ForeignLibraryInterface;

/**
 * Loads `symbols` from glibc's libc.so.6 once per symbol table (later calls return the same
 * answer); null where that library cannot be opened (musl), so that callers can do without.
 */
export function libcLoader<S extends Deno.ForeignLibraryInterface>(
  symbols: S,
): () => Deno.DynamicLibrary<S>["symbols"] | null {
  let loaded: Deno.DynamicLibrary<S>["symbols"] | null | undefined;
  return () => {
    if (loaded !== undefined) return loaded;
    try {
      loaded = Deno.dlopen("libc.so.6", symbols).symbols;
    } catch {
      loaded = null;
    }
    return loaded;
  };
}

const load = libcLoader(SYMBOLS);

/**
 * Whether this process may create and remove entries in `dir`: undefined if it may (or if
 * the C library cannot be asked), else the kernel's reason.
 */
export function cannotWriteDirectory(dir: string): string | undefined {
  const c = load();
  if (!c) return undefined;
  const path = new TextEncoder().encode(dir + "\0");
  if (c.access(path, W_OK | X_OK) === 0) return undefined;
  const errno = new Deno.UnsafePointerView(c.__errno_location()!).getInt32();
  return REASONS[errno] ?? `errno ${errno}`;
}

/** Returns freed heap pages to the system; false where glibc's malloc_trim is not there. */
export async function trimMalloc(): Promise<boolean> {
  const c = load();
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

/** RLIMIT_NOFILE on Linux (every architecture). */
const RLIMIT_NOFILE = 7;
/** RLIM_INFINITY: rlim_t is 64 bits on every 64-bit Linux. */
const RLIM_INFINITY = 0xffff_ffff_ffff_ffffn;

/** A descriptor limit: `soft` is what applies, `hard` the most the process may raise it to. */
export interface FileLimit {
  readonly soft: number;
  readonly hard: number;
}

/** This process's RLIMIT_NOFILE, or undefined where glibc cannot be asked. Infinity for none. */
export function fileLimit(): FileLimit | undefined {
  const c = load();
  if (!c) return undefined;
  const limit = new BigUint64Array(2);
  if (c.getrlimit(RLIMIT_NOFILE, limit) !== 0) return undefined;
  return { soft: fromRlim(limit[0]), hard: fromRlim(limit[1]) };
}

/**
 * Raises the soft RLIMIT_NOFILE to the hard limit, so that the adaptor has every descriptor
 * it may have before peers start taking them (each ZeroMQ or HTTP connection holds one, and
 * libzmq's ipc listener aborts the process on EMFILE). Systemd's `LimitNOFILE=65536` sets both
 * limits; a shell's `ulimit -Sn 1024` or a container runtime often leaves soft below hard.
 *
 * Deno 2.9.6 itself raises the soft limit at start (measured: `ulimit -Sn 128` still gave
 * the adaptor 20 000), so this is the adaptor's own guarantee, not the runtime's accident; it
 * also says what the limit is. Returns the limit before and after, or undefined where glibc
 * cannot be asked (musl). `raised` is false when soft already equalled hard or the kernel
 * refused (then `after` is `before`).
 */
export function raiseFileLimit(): { before: FileLimit; after: FileLimit; raised: boolean } | undefined {
  const c = load();
  const before = fileLimit();
  if (!c || !before) return undefined;
  if (before.soft >= before.hard) return { before, after: before, raised: false };
  const limit = new BigUint64Array([toRlim(before.hard), toRlim(before.hard)]);
  if (c.setrlimit(RLIMIT_NOFILE, limit) !== 0) return { before, after: before, raised: false };
  const after = fileLimit() ?? before;
  return { before, after, raised: after.soft > before.soft };
}

function fromRlim(value: bigint): number {
  return value === RLIM_INFINITY ? Infinity : Number(value);
}

function toRlim(value: number): bigint {
  return value === Infinity ? RLIM_INFINITY : BigInt(value);
}
