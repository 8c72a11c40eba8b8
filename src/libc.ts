/**
 * The few C library calls Deno has no API for, through FFI on glibc's libc.so.6. Where that
 * library cannot be opened (musl), each does nothing and says so by its result.
 *
 * - access(2): may this process write into a directory, as the kernel decides it (mode bits
 *   alone do not tell: root, read-only mounts, immutable directories). Used to notice that the
 *   ipc directory turned unwritable.
 * - umask(2): the ipc guard binds socket files under umask 0777 (`Deno.umask` would need
 *   --allow-sys, all of it).
 * - getgrnam(3): `--ipc-group` by name, through NSS (LDAP, SSSD), not /etc/group alone.
 * - pthread_sigmask(3): keep signals off the threads that wait in libzmq (see `blockSignals`).
 * - open(2)/flock(2)/fstat(2): the lock that makes one adaptor per ipc path (see `lockFile`).
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
  umask: { parameters: ["u32"], result: "u32" },
  getgrnam: { parameters: ["buffer"], result: "pointer" },
  setsockopt: { parameters: ["i32", "i32", "i32", "buffer", "u32"], result: "i32" },
  pthread_sigmask: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  // The same call run on a thread of Deno's blocking pool: it blocks the signals there.
  pthread_sigmask_pool: {
    name: "pthread_sigmask",
    parameters: ["i32", "buffer", "buffer"],
    result: "i32",
    nonblocking: true,
  },
  open: { parameters: ["buffer", "i32", "u32"], result: "i32" },
  read: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  close: { parameters: ["i32"], result: "i32" },
  opendir: { parameters: ["buffer"], result: "pointer" },
  readdir: { parameters: ["pointer"], result: "pointer" },
  closedir: { parameters: ["pointer"], result: "i32" },
  flock: { parameters: ["i32", "i32"], result: "i32" },
  unlink: { parameters: ["buffer"], result: "i32" },
  // glibc >= 2.33 exports fstat itself; older ones only __fxstat.
  fstat: { parameters: ["i32", "buffer"], result: "i32", optional: true },
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
  const code = errno(c);
  return REASONS[code] ?? `errno ${code}`;
}

function errno(c: NonNullable<ReturnType<typeof load>>): number {
  return new Deno.UnsafePointerView(c.__errno_location()!).getInt32();
}

/**
 * Sets the process's file-creation mask and returns the previous one; undefined (nothing set)
 * where libc cannot be opened. Process-wide: restore it right after use.
 */
export function setUmask(mask: number): number | undefined {
  return load()?.umask(mask);
}

/**
 * The gid of group `name` as the C library resolves it (getgrnam(3): /etc/group, LDAP, SSSD…,
 * as nsswitch.conf says); null when there is no such group; undefined where libc cannot be
 * opened (the caller then reads /etc/group itself).
 */
export function groupId(name: string): number | null | undefined {
  const c = load();
  if (!c) return undefined;
  const entry = c.getgrnam(new TextEncoder().encode(name + "\0"));
  if (!entry) return null;
  return new Deno.UnsafePointerView(entry).getUint32(16); // struct group: name, passwd, gid_t gr_gid
}

/** Linux's numbers of the signals the adaptor handles (the same on x86_64 and arm64). */
export const SIGNAL_NUMBERS: Readonly<Record<string, number>> = {
  SIGHUP: 1,
  SIGINT: 2,
  SIGUSR1: 10,
  SIGUSR2: 12,
  SIGTERM: 15,
};

const SIG_BLOCK = 0;

/**
 * Blocks `signals` on the calling (JavaScript) thread and on every thread of Deno's blocking
 * pool; threads the pool starts later are started by this thread and inherit its mask.
 *
 * Why: Deno's pool threads do not block signals, so a signal with a handler (SIGHUP on
 * `systemctl reload`) may be delivered to the thread waiting in `zmq_proxy_steerable` or a
 * blocking receive, whose poll then returns EINTR and ends the wait. With the signals blocked
 * there, the kernel delivers them to a thread that does not block them (V8's workers), where
 * Deno's handler runs as before.
 *
 * The pool's existing threads are reached by calling `pthread_sigmask` on the pool: an idle
 * thread takes each call. Which thread takes which is not ours to choose (on a busy machine one
 * thread may take several while another sleeps on), so the threads are read back from
 * /proc/self/task (through libc: Deno's own file API refuses /proc/self without --allow-all)
 * and calls go out again until every pool thread blocks the signals, `rounds` times at most.
 * Returns the number of pool threads that still do not (0: all shielded); undefined with
 * `rounds` 0 (one round of calls, not read back) or where libc cannot be opened (musl: nothing
 * was blocked).
 */
export async function blockSignals(signals: readonly number[], rounds = 50): Promise<number | undefined> {
  const c = load();
  if (!c) return undefined;
  const set = new BigUint64Array(16); // sigset_t: 1024 bits
  let bits = 0n;
  for (const n of signals) bits |= 1n << BigInt(n - 1);
  set[0] = bits; // every signal the adaptor handles is below 64
  if (c.pthread_sigmask(SIG_BLOCK, set, null) !== 0) return undefined;
  let exposed = rounds > 0 ? poolThreadsNotBlocking(c, bits) : 4;
  if (rounds === 0) {
    await Promise.all(Array.from({ length: exposed }, () => c.pthread_sigmask_pool(SIG_BLOCK, set, null)));
    return undefined; // not read back
  }
  for (let round = 0; round < rounds && exposed > 0; round++) {
    await Promise.all(
      Array.from({ length: exposed + 4 }, () => c.pthread_sigmask_pool(SIG_BLOCK, set, null)),
    );
    if (round > 0) await new Promise((resolve) => setTimeout(resolve, 2)); // let busy ones finish
    exposed = poolThreadsNotBlocking(c, bits);
  }
  return exposed;
}

const SOL_SOCKET = 1;
const SO_ATTACH_FILTER = 26;
const SO_DETACH_FILTER = 27;

/** What the filter of each listening socket drops: everything (the cap), or some hosts. */
const listenerFilters = new Map<number, { dropAll: boolean; hosts: readonly string[] }>();

/**
 * Makes the kernel drop (`drop` true) or pass again (false) every packet to the socket `fd`: on
 * a listening tcp socket, new connections' SYNs, so no connection is added to its queue while
 * those it has keep working (a classic BPF program of one instruction, `ret #0`). The peers'
 * SYNs are retried by their kernels and succeed once it passes again. Hosts blocked with
 * `setBlockedHosts` stay blocked meanwhile. Returns whether the kernel took it (false without
 * libc, or for a descriptor that is not a socket).
 */
export function setAcceptFilter(fd: number, drop: boolean): boolean {
  const state = listenerFilters.get(fd) ?? { dropAll: false, hosts: [] };
  listenerFilters.set(fd, { ...state, dropAll: drop });
  return applyListenerFilter(fd);
}

/**
 * Makes the kernel drop the packets that IPv4 or IPv6 `hosts` send to the listening socket `fd`
 * (their new connections' SYNs: no accept, no handshake), and pass everyone else's; an empty
 * list lifts it. Connections accepted before keep the filter they were accepted under, which
 * passes their own host. Returns whether the kernel took it.
 */
export function setBlockedHosts(fd: number, hosts: readonly string[]): boolean {
  const state = listenerFilters.get(fd) ?? { dropAll: false, hosts: [] };
  listenerFilters.set(fd, { ...state, hosts: [...hosts] });
  return applyListenerFilter(fd);
}

/** A classic BPF program's most instructions (BPF_MAXINSNS). */
const MAX_BPF_INSNS = 4096;

/** The classic BPF program that drops what `state` says, or undefined to pass everything. */
export function listenerProgram(
  state: { dropAll: boolean; hosts: readonly string[] },
): Uint8Array | undefined {
  const LDW = 0x20, LDB = 0x30, RSH = 0x74, JEQ = 0x15, RET = 0x06;
  const NET = 0xfff00000; // SKF_NET_OFF: offsets from the IP header (a tcp socket's data starts past it)
  const insns: [number, number, number, number][] = [];
  const op = (code: number, k: number, jt = 0, jf = 0) => insns.push([code, jt, jf, k >>> 0]);
  if (state.dropAll) {
    op(RET, 0);
  } else {
    if (state.hosts.length === 0) return undefined;
    // Two instructions an IPv4 host, nine an IPv6 one, seven more: hosts past the limit are left out.
    let budget = MAX_BPF_INSNS - 7;
    const v4: number[] = [];
    const v6: [number, number, number, number][] = [];
    for (const host of state.hosts) {
      const a = ipv4(host), b = a === undefined ? ipv6(host) : undefined;
      const cost = a !== undefined ? 2 : b !== undefined ? 9 : 0;
      if (cost > budget) break;
      budget -= cost;
      if (a !== undefined) v4.push(a);
      if (b !== undefined) v6.push(b);
    }
    const v4Code = v4.length === 0
      ? []
      : [[LDW, NET + 12, 0, 0], ...v4.flatMap((a) => [[JEQ, a, 0, 1], [RET, 0, 0, 0]])];
    const v6Code = v6.flatMap((w) => [
      [LDW, NET + 8, 0, 0],
      [JEQ, w[0], 0, 7],
      [LDW, NET + 12, 0, 0],
      [JEQ, w[1], 0, 5],
      [LDW, NET + 16, 0, 0],
      [JEQ, w[2], 0, 3],
      [LDW, NET + 20, 0, 0],
      [JEQ, w[3], 0, 1],
      [RET, 0, 0, 0],
    ]);
    // Version nibble: 4 → the IPv4 list, 6 → the IPv6 list; a packet no entry matches passes.
    const PASS = 0xffffffff;
    op(LDB, NET);
    op(RSH, 4);
    op(JEQ, 4, 0, v4Code.length + 1);
    for (const [code, k, jt, jf] of v4Code) op(code, k, jt, jf);
    op(RET, PASS);
    op(JEQ, 6, 0, v6Code.length);
    for (const [code, k, jt, jf] of v6Code) op(code, k, jt, jf);
    op(RET, PASS);
  }
  const program = new Uint8Array(insns.length * 8); // struct sock_filter { u16 code; u8 jt, jf; u32 k }
  const view = new DataView(program.buffer);
  insns.forEach(([code, jt, jf, k], i) => {
    view.setUint16(i * 8, code, true);
    view.setUint8(i * 8 + 2, jt);
    view.setUint8(i * 8 + 3, jf);
    view.setUint32(i * 8 + 4, k, true);
  });
  return program;
}

function applyListenerFilter(fd: number): boolean {
  const c = load();
  if (!c) return false;
  const filter = listenerProgram(listenerFilters.get(fd)!);
  if (!filter) {
    const rc = c.setsockopt(fd, SOL_SOCKET, SO_DETACH_FILTER, new Uint8Array(4), 4);
    return rc === 0 || errno(c) === 2; // ENOENT: no filter was attached
  }
  const program = new Uint8Array(16); // struct sock_fprog { u16 len; (pad); struct sock_filter *filter }
  const view = new DataView(program.buffer);
  view.setUint16(0, filter.length / 8, true);
  view.setBigUint64(8, BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(filter))), true);
  return c.setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, program, program.length) === 0;
}

/** `a.b.c.d` (or IPv4-mapped `::ffff:a.b.c.d`) as the 32-bit number BPF loads; else undefined. */
function ipv4(host: string): number | undefined {
  const m = /^(?:::ffff:)?(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/i.exec(host);
  if (!m) return undefined;
  const bytes = m.slice(1).map(Number);
  if (bytes.some((b) => b > 255)) return undefined;
  return ((bytes[0] << 24) | (bytes[1] << 16) | (bytes[2] << 8) | bytes[3]) >>> 0;
}

/** An IPv6 address (not IPv4-mapped) as four 32-bit words; else undefined. */
function ipv6(host: string): [number, number, number, number] | undefined {
  const text = host.replace(/^\[|\]$/g, "").replace(/%.*$/, "");
  if (!text.includes(":") || ipv4(text) !== undefined || !/^[0-9a-f:]+$/i.test(text)) return undefined;
  const [head, tail, extra] = text.split("::");
  if (extra !== undefined) return undefined;
  const part = (s: string | undefined) => (s ? s.split(":") : []);
  const left = part(head), right = part(tail);
  const fill = tail === undefined ? 0 : 8 - left.length - right.length;
  if (fill < 0 || (tail === undefined && left.length !== 8)) return undefined;
  const groups = [...left, ...Array(fill).fill("0"), ...right].map((g) => parseInt(g, 16));
  if (groups.length !== 8 || groups.some((g) => !(g >= 0 && g <= 0xffff))) return undefined;
  return [0, 1, 2, 3].map((i) => ((groups[2 * i] << 16) | groups[2 * i + 1]) >>> 0) as [
    number,
    number,
    number,
    number,
  ];
}

/** How many descriptors this process has open now (/proc/self/fd), or undefined without libc. */
export function openDescriptors(): number | undefined {
  const c = load();
  if (!c) return undefined;
  const dir = c.opendir(new TextEncoder().encode("/proc/self/fd\0"));
  if (!dir) return undefined;
  let n = 0;
  try {
    for (let entry = c.readdir(dir); entry; entry = c.readdir(dir)) {
      if (/^\d+$/.test(new Deno.UnsafePointerView(entry).getCString(19))) n++;
    }
  } finally {
    c.closedir(dir);
  }
  return n - 1; // the directory's own descriptor
}

/** How many of this process's blocking-pool threads do not block all of `bits` (SigBlk). */
function poolThreadsNotBlocking(c: NonNullable<ReturnType<typeof load>>, bits: bigint): number {
  const encoder = new TextEncoder();
  const dir = c.opendir(encoder.encode("/proc/self/task\0"));
  if (!dir) return 0;
  let exposed = 0;
  try {
    for (let entry = c.readdir(dir); entry; entry = c.readdir(dir)) {
      const name = new Deno.UnsafePointerView(entry).getCString(19); // struct dirent's d_name
      if (!/^\d+$/.test(name)) continue;
      const comm = readSmallFile(c, `/proc/self/task/${name}/comm`);
      if (!comm?.startsWith("tokio-runtime")) continue; // Deno's pools; libzmq's own threads block all
      const blocked = /^SigBlk:\s*([0-9a-f]+)/m.exec(
        readSmallFile(c, `/proc/self/task/${name}/status`) ?? "",
      );
      if (blocked && (BigInt(`0x${blocked[1]}`) & bits) !== bits) exposed++;
    }
  } finally {
    c.closedir(dir);
  }
  return exposed;
}

function readSmallFile(c: NonNullable<ReturnType<typeof load>>, path: string): string | undefined {
  const fd = c.open(new TextEncoder().encode(path + "\0"), 0, 0);
  if (fd === -1) return undefined;
  try {
    const buf = new Uint8Array(4096);
    const n = Number(c.read(fd, buf, BigInt(buf.length)));
    return n > 0 ? new TextDecoder().decode(buf.subarray(0, n)) : undefined;
  } finally {
    c.close(fd);
  }
}

const O_RDWR = 0o2;
const O_CREAT = 0o100;
const O_NOFOLLOW = 0o400000;
const O_CLOEXEC = 0o2000000;
const LOCK_EX = 2;
const LOCK_NB = 4;
const EWOULDBLOCK = 11;

/** An exclusive `flock` held on a file; `release()` removes the file, then unlocks it. */
export interface FileLock {
  readonly path: string;
  release(): void;
}

/** Why `lockFile` did not get the lock. */
export type LockRefusal = { readonly held: true } | { readonly held: false; readonly why: string };

/**
 * Takes an exclusive, non-blocking `flock` on `path` (created mode 0600 if missing), held until
 * `release()` or the process ends (the kernel drops it then, whatever killed the process).
 * Returns the refusal instead when another process holds it, or why it could not be taken.
 * The lock is checked to be on the file that is at `path` now: a holder that released (removed)
 * it between our open and our flock leaves us a nameless file, and we try again.
 * Undefined result where libc cannot be opened (musl): no lock, nothing enforced.
 */
export function lockFile(path: string): FileLock | LockRefusal | undefined {
  const c = load();
  if (!c) return undefined;
  const name = new TextEncoder().encode(path + "\0");
  for (let attempt = 0; attempt < 5; attempt++) {
    const fd = c.open(name, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0o600);
    if (fd === -1) {
      const code = errno(c);
      return { held: false, why: REASONS[code] ?? `errno ${code}` };
    }
    if (c.flock(fd, LOCK_EX | LOCK_NB) === -1) {
      const code = errno(c);
      c.close(fd);
      if (code === EWOULDBLOCK) return { held: true };
      return { held: false, why: REASONS[code] ?? `errno ${code}` };
    }
    if (c.fstat && !sameInode(c.fstat, fd, path)) {
      c.close(fd);
      continue;
    }
    let released = false;
    return {
      path,
      release() {
        if (released) return;
        released = true;
        c.unlink(name); // while still locked: nobody can take a lock on this file meanwhile
        c.close(fd);
      },
    };
  }
  return { held: false, why: "the lock file kept being replaced" };
}

function sameInode(
  fstat: (fd: number, buf: Uint8Array<ArrayBuffer>) => number,
  fd: number,
  path: string,
): boolean {
  const buf = new Uint8Array(256); // struct stat: st_dev at 0, st_ino at 8 (x86_64 and arm64)
  if (fstat(fd, buf) !== 0) return true;
  const view = new DataView(buf.buffer);
  try {
    const info = Deno.lstatSync(path);
    return BigInt(info.ino ?? -1) === view.getBigUint64(8, true) &&
      BigInt(info.dev) === view.getBigUint64(0, true);
  } catch {
    return false; // removed meanwhile
  }
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
