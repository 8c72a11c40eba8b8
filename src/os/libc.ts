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
 * - signal(2): ignore SIGUSR1 and SIGUSR2 for the whole process (see `ignoreSignals`).
 * - open(2)/flock(2)/statx(2)/ftruncate(2)/pwrite(2): the lock that makes one adaptor per ipc path,
 *   checked and written through its one descriptor (see `lockFile`), and `--check`'s look at it
 *   (`probeLock`).
 * - socket(2)/connect(2)/getsockopt(2) SO_PEERCRED: who serves a unix socket (see `probeUnixSocket`).
 * - signal(2): ignore SIGXFSZ, so that a write past the file-size limit fails with EFBIG instead of
 *   killing the process without a word (see `ignoreFileSizeSignal`).
 * - malloc_trim(3): give freed heap pages back to the system. A subscriber that falls behind
 *   makes the XPUB queue up to --sndhwm messages for it, in libzmq's (glibc) heap; once they are
 *   freed glibc keeps most of those pages (figures in docs/reliability.md); without it, RSS
 *   after a burst looks like a leak to whoever watches it.
 * - getrlimit(2)/setrlimit(2) on RLIMIT_NOFILE: raise the soft descriptor limit to the hard
 *   one at start (see `raiseFileLimit`).
 */

const W_OK = 2;
const X_OK = 1;

const REASONS: Readonly<Record<number, string>> = {
  1: "operation not permitted (immutable?)",
  2: "no such file or directory",
  13: "permission denied",
  27: "file too large (the file-size limit, ulimit -f?)",
  28: "no space left on device",
  30: "read-only file system",
};

/** The kernel's reason for errno `code`, in words where we know them. */
function reason(code: number): string {
  return REASONS[code] ?? `errno ${code}`;
}

const SYMBOLS = {
  access: { parameters: ["buffer", "i32"], result: "i32" },
  umask: { parameters: ["u32"], result: "u32" },
  getgrnam: { parameters: ["buffer"], result: "pointer" },
  setsockopt: { parameters: ["i32", "i32", "i32", "buffer", "u32"], result: "i32" },
  pthread_sigmask: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  signal: { parameters: ["i32", "pointer"], result: "pointer" },
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
  // glibc >= 2.28; one layout on every architecture, unlike struct stat.
  statx: { parameters: ["i32", "buffer", "i32", "u32", "buffer"], result: "i32", optional: true },
  ftruncate: { parameters: ["i32", "i64"], result: "i32" },
  pwrite: { parameters: ["i32", "buffer", "usize", "i64"], result: "isize" },
  pread: { parameters: ["i32", "buffer", "usize", "i64"], result: "isize" },
  geteuid: { parameters: [], result: "u32" },
  getpwuid: { parameters: ["u32"], result: "pointer" },
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  connect: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  getsockopt: { parameters: ["i32", "i32", "i32", "buffer", "buffer"], result: "i32" },
  fchownat: { parameters: ["i32", "buffer", "u32", "u32", "i32"], result: "i32" },
  chmod: { parameters: ["buffer", "u32"], result: "i32" },
  getpid: { parameters: [], result: "i32" },
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

type Libc = NonNullable<ReturnType<typeof load>>;

function cstring(text: string): Uint8Array<ArrayBuffer> {
  return new TextEncoder().encode(text + "\0");
}

/**
 * Whether this process may create and remove entries in `dir`: undefined if it may (or if
 * the C library cannot be asked), else the kernel's reason.
 */
export function cannotWriteDirectory(dir: string): string | undefined {
  const c = load();
  if (!c) return undefined;
  const path = new TextEncoder().encode(dir + "\0");
  if (c.access(path, W_OK | X_OK) === 0) return undefined;
  return reason(errno(c));
}

function errno(c: Libc): number {
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
/** SIG_ERR, (void *) -1, as the pointer's value. */
const SIG_ERR = 0xffff_ffff_ffff_ffffn;

/**
 * Sets the disposition of `signals` to SIG_IGN for the whole process: the kernel then discards
 * them, and no handler anyone installed earlier runs. Returns false where libc cannot be opened
 * or a call failed.
 */
export function ignoreSignals(signals: readonly number[]): boolean {
  const c = load();
  if (!c) return false;
  const ignore = Deno.UnsafePointer.create(1n); // SIG_IGN
  return signals.every((n) => {
    const previous = BigInt(Deno.UnsafePointer.value(c.signal(n, ignore)));
    return previous !== SIG_ERR && previous !== -1n;
  });
}

/** This process's signal dispositions, as /proc/self/status shows them (bit n-1 is signal n). */
export interface SignalDispositions {
  /** SigIgn: ignored by the process. */
  readonly ignored: bigint;
  /** SigCgt: caught (a handler is installed). */
  readonly caught: bigint;
  /** SigBlk of the calling thread. */
  readonly blocked: bigint;
}

/** Reads this process's signal dispositions; undefined where libc or /proc cannot be read. */
export function signalDispositions(): SignalDispositions | undefined {
  const c = load();
  if (!c) return undefined;
  const status = readSmallFile(c, "/proc/thread-self/status");
  const field = (name: string) => {
    const hex = new RegExp(`^${name}:\\s*([0-9a-f]+)`, "m").exec(status ?? "")?.[1];
    return hex === undefined ? undefined : BigInt(`0x${hex}`);
  };
  const [ignored, caught, blocked] = [field("SigIgn"), field("SigCgt"), field("SigBlk")];
  if (ignored === undefined || caught === undefined || blocked === undefined) return undefined;
  return { ignored, caught, blocked };
}

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

/**
 * Makes the kernel drop (`drop` true) or pass again (false) every packet to the socket `fd`: on
 * a listening tcp socket, new connections' SYNs, so no connection is added to its queue while
 * those it has keep working (a classic BPF program of one instruction, `ret #0`). The peers'
 * SYNs are retried by their kernels and succeed once it passes again. Returns whether the kernel
 * took it (false without libc, or for a descriptor that is not a socket).
 */
export function setAcceptFilter(fd: number, drop: boolean): boolean {
  const c = load();
  if (!c) return false;
  if (!drop) {
    const rc = c.setsockopt(fd, SOL_SOCKET, SO_DETACH_FILTER, new Uint8Array(4), 4);
    return rc === 0 || errno(c) === 2; // ENOENT: no filter was attached
  }
  const filter = new Uint8Array(8); // struct sock_filter { u16 code; u8 jt, jf; u32 k }: ret #0
  new DataView(filter.buffer).setUint16(0, 0x06, true); // BPF_RET | BPF_K
  const program = new Uint8Array(16); // struct sock_fprog { u16 len; (pad); struct sock_filter *filter }
  const view = new DataView(program.buffer);
  view.setUint16(0, 1, true);
  view.setBigUint64(8, BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(filter))), true);
  return c.setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, program, program.length) === 0;
}

/** How many descriptors this process has open now (/proc/self/fd), or undefined without libc. */
export function openDescriptors(): number | undefined {
  const c = load();
  if (!c) return undefined;
  // Linux 6.2+ reports the count as the directory's size: O(1), where a readdir of 10 000
  // entries through FFI takes tens of ms (older kernels say 0: then the readdir).
  const counted = procFdSize(c);
  if (counted) return counted - 1; // the descriptor opened to ask
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

/** The size statx(2) gives /proc/self/fd (its entries, on Linux ≥ 6.2), or undefined. */
function procFdSize(c: Libc): number | undefined {
  const fd = c.open(new TextEncoder().encode("/proc/self/fd\0"), O_RDONLY | O_CLOEXEC, 0);
  if (fd < 0) return undefined;
  try {
    return statx(c, { fd })?.size;
  } finally {
    c.close(fd);
  }
}

/** How many of this process's blocking-pool threads do not block all of `bits` (SigBlk). */
function poolThreadsNotBlocking(c: Libc, bits: bigint): number {
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

function readSmallFile(c: Libc, path: string): string | undefined {
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

const O_RDONLY = 0;
const O_RDWR = 0o2;
const O_CREAT = 0o100;
const O_NOCTTY = 0o400;
const O_NONBLOCK = 0o4000;
const O_NOFOLLOW = 0o400000;
const O_CLOEXEC = 0o2000000;
const LOCK_EX = 2;
const LOCK_NB = 4;
const EWOULDBLOCK = 11;
const ENXIO = 6;
const EISDIR = 21;
const ELOOP = 40;

const AT_FDCWD = -100;
const AT_SYMLINK_NOFOLLOW = 0x100;
const AT_EMPTY_PATH = 0x1000;
const STATX_BASIC_STATS = 0x7ff;

/** What `statx` tells about a file: enough to judge a lock file and to tell two files apart. */
export interface FileStatus {
  readonly type: "file" | "directory" | "symbolic link" | "FIFO" | "socket" | "device";
  readonly uid: number;
  readonly links: number;
  /** Device and inode: the same file when equal. */
  readonly id: string;
  readonly size: number;
}

const TYPES: Readonly<Record<number, FileStatus["type"]>> = {
  0o100000: "file",
  0o040000: "directory",
  0o120000: "symbolic link",
  0o010000: "FIFO",
  0o140000: "socket",
  0o020000: "device",
  0o060000: "device",
};

/** statx(2) of `fd` (path undefined) or of `path` itself (not what a symbolic link points to). */
function statx(c: Libc, target: { fd: number } | { path: string }): FileStatus | undefined {
  if (!c.statx) return undefined;
  const buf = new Uint8Array(256); // struct statx: the same on every architecture
  const rc = "fd" in target
    ? c.statx(target.fd, cstring(""), AT_EMPTY_PATH, STATX_BASIC_STATS, buf)
    : c.statx(AT_FDCWD, cstring(target.path), AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS, buf);
  if (rc !== 0) return undefined;
  const view = new DataView(buf.buffer);
  return {
    links: view.getUint32(16, true),
    uid: view.getUint32(20, true),
    type: TYPES[view.getUint16(28, true) & 0o170000] ?? "device",
    id: `${view.getUint32(136, true)}:${view.getUint32(140, true)}:${view.getBigUint64(32, true)}`,
    size: Number(view.getBigUint64(40, true)),
  };
}

/** The status of the file at `path` (not followed), or undefined (none, or no statx here). */
export function fileStatus(path: string): FileStatus | undefined {
  const c = load();
  return c ? statx(c, { path }) : undefined;
}

/** This process's effective uid, or undefined where libc cannot be opened. */
export function effectiveUid(): number | undefined {
  return load()?.geteuid();
}

/** "uid 65534 (nobody)": a uid with its user name where the C library knows one. */
export function describeUid(uid: number): string {
  const c = load();
  const entry = c?.getpwuid(uid);
  const name = entry
    ? Deno.UnsafePointerView.getCString(new Deno.UnsafePointerView(entry).getPointer(0)!)
    : "";
  return name ? `uid ${uid} (${name})` : `uid ${uid}`;
}

/** An exclusive `flock` held on a file; `release()` removes the file, then unlocks it. */
export interface FileLock {
  readonly path: string;
  /**
   * Replaces the file's content with `text`, through the locked descriptor (never by opening
   * the path again, which could by then name something else). Returns why not, or undefined.
   */
  write(text: string): string | undefined;
  release(): void;
}

/**
 * Why `lockFile` did not get the lock: another process holds it (with the pid it wrote, when it
 * reads as one); the file at the path is not one a lock may be taken on (`unfit`: a symbolic
 * link, a FIFO, a directory, another user's file, a hard link), said as the rest of a sentence
 * that begins with the path; or the kernel refused (`failed`).
 */
export type LockRefusal =
  | { readonly kind: "held"; readonly pid?: number }
  | { readonly kind: "unfit"; readonly why: string }
  | { readonly kind: "failed"; readonly why: string };

/**
 * Takes an exclusive, non-blocking `flock` on `path` (created mode 0600 if missing), held until
 * `release()` or the process ends (the kernel drops it then, whatever killed the process).
 *
 * The path may be in a directory others can write to, so nothing is trusted: it is opened with
 * O_NOFOLLOW (a symbolic link is refused) and O_NONBLOCK (a FIFO cannot block the open), and the
 * open file must be a regular file of this process's user with one link (a hard link would let
 * the pid overwrite another file), or it is refused without a byte written. The lock is checked
 * to be on the file that is at `path` now: a holder that released (removed) it between our open
 * and our flock leaves us a nameless file, and we try again. Returns the refusal instead of a
 * lock when another process holds it or the file is unfit; undefined where libc (or statx, glibc
 * < 2.28) is not there (musl): no lock, nothing enforced.
 */
export function lockFile(path: string): FileLock | LockRefusal | undefined {
  const c = load();
  if (!c?.statx) return undefined;
  const name = cstring(path);
  const uid = c.geteuid();
  for (let attempt = 0; attempt < 5; attempt++) {
    const fd = c.open(name, O_RDWR | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC, 0o600);
    if (fd === -1) {
      const code = errno(c);
      if (code === ELOOP) return { kind: "unfit", why: "is a symbolic link" };
      if (code === EISDIR) return { kind: "unfit", why: "is a directory" };
      if (code === ENXIO) return { kind: "unfit", why: "is a socket" };
      return { kind: "failed", why: reason(code) };
    }
    const refusal = unfitLock(statx(c, { fd }), uid);
    if (refusal) {
      c.close(fd);
      if (refusal === "gone") continue;
      return { kind: "unfit", why: refusal };
    }
    if (c.flock(fd, LOCK_EX | LOCK_NB) === -1) {
      const code = errno(c);
      const pid = code === EWOULDBLOCK ? readPid(c, fd) : undefined;
      c.close(fd);
      if (code === EWOULDBLOCK) return { kind: "held", pid };
      return { kind: "failed", why: reason(code) };
    }
    if (statx(c, { path })?.id !== statx(c, { fd })?.id) {
      c.close(fd);
      continue;
    }
    let released = false;
    return {
      path,
      write(text) {
        const bytes = new TextEncoder().encode(text);
        if (c.ftruncate(fd, 0n) !== 0) return reason(errno(c));
        // A write that reaches the file-size limit is short; the next one says why (EFBIG).
        for (let at = 0; at < bytes.length;) {
          const n = Number(c.pwrite(fd, bytes.subarray(at), BigInt(bytes.length - at), BigInt(at)));
          if (n <= 0) return n === 0 ? "nothing written" : reason(errno(c));
          at += n;
        }
        return undefined;
      },
      release() {
        if (released) return;
        released = true;
        // While still locked (nobody can take a lock on this file meanwhile), and only if the
        // path still names it.
        if (statx(c, { path })?.id === statx(c, { fd })?.id) c.unlink(name);
        c.close(fd);
      },
    };
  }
  return { kind: "failed", why: "the lock file kept being replaced" };
}

/** Why the open file `status` may not be a lock file of `uid`'s; "gone" when it was removed. */
function unfitLock(status: FileStatus | undefined, uid: number): string | "gone" | undefined {
  if (!status) return "cannot be examined (statx failed)";
  if (status.type !== "file") return `is a ${status.type}, not a regular file`;
  if (status.uid !== uid) return `is owned by ${describeUid(status.uid)}, not by this user (uid ${uid})`;
  if (status.links === 0) return "gone";
  if (status.links > 1) return `has ${status.links} links (a hard link to another file?)`;
  return undefined;
}

/** The pid a holder wrote into the lock file open as `fd`, if it reads as one. */
function readPid(c: Libc, fd: number): number | undefined {
  const buf = new Uint8Array(32);
  const n = Number(c.pread(fd, buf, BigInt(buf.length), 0n));
  const text = n > 0 ? new TextDecoder().decode(buf.subarray(0, n)).trim() : "";
  return /^\d{1,10}$/.test(text) ? Number(text) : undefined;
}

/**
 * The text of a small file under /proc/self (4 KiB at most), read through libc: Deno's own
 * file API refuses /proc/self without --allow-all. Undefined where it cannot be read.
 */
export function readProcFile(path: string): string | undefined {
  const c = load();
  return c ? readSmallFile(c, path) : undefined;
}

/** What `probeLock` found at a lock file. */
export type LockProbe = "absent" | "free" | "held" | { readonly why: string };

const ENOENT = 2;

/**
 * Whether another process holds the `lockFile` lock on `path`, asked without creating or
 * removing anything (`--check`): an existing file is locked and unlocked at once. Undefined
 * where libc cannot be opened.
 */
export function probeLock(path: string): LockProbe | undefined {
  const c = load();
  if (!c) return undefined;
  const fd = c.open(new TextEncoder().encode(path + "\0"), O_RDWR | O_NOFOLLOW | O_CLOEXEC, 0);
  if (fd === -1) {
    const code = errno(c);
    return code === ENOENT ? "absent" : { why: REASONS[code] ?? `errno ${code}` };
  }
  try {
    if (c.flock(fd, LOCK_EX | LOCK_NB) === 0) return "free"; // released by the close below
    const code = errno(c);
    return code === EWOULDBLOCK ? "held" : { why: REASONS[code] ?? `errno ${code}` };
  } finally {
    c.close(fd);
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
 * Deno raises the soft limit itself at start today, so this is the adaptor's own guarantee,
 * not the runtime's accident; it also says what the limit is. Returns the limit before and after, or undefined where glibc
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

const AF_UNIX = 1;
const SOCK_STREAM = 1;
const SOCK_NONBLOCK = 0o4000;
const SOCK_CLOEXEC = 0o2000000;
const SO_PEERCRED = 17;
const EAGAIN = 11;
const ECONNREFUSED = 111;
const EACCES = 13;

/** What connecting to a unix socket file found. */
export type UnixSocketProbe =
  /** Something accepts connections there: the process that listens, as the kernel recorded it. */
  | { readonly state: "served"; readonly pid?: number; readonly uid?: number }
  /** Nothing listens (the file is stale). */
  | { readonly state: "refused" }
  | { readonly state: "absent" }
  | { readonly state: "denied" }
  | { readonly state: "failed"; readonly why: string };

/**
 * Connects to the unix socket file `path` and, when something serves it, asks the kernel who
 * (SO_PEERCRED: the pid and uid of the process that listens). Non-blocking: a listener whose
 * queue is full counts as served, without credentials. Undefined where libc cannot be opened.
 */
export function probeUnixSocket(path: string): UnixSocketProbe | undefined {
  const c = load();
  if (!c) return undefined;
  const name = new TextEncoder().encode(path);
  const address = new Uint8Array(110); // struct sockaddr_un: sa_family_t, then sun_path[108]
  if (name.length >= address.length - 2) return { state: "failed", why: "path too long for a unix socket" };
  new DataView(address.buffer).setUint16(0, AF_UNIX, true);
  address.set(name, 2);
  const fd = c.socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd === -1) return { state: "failed", why: reason(errno(c)) };
  try {
    if (c.connect(fd, address, 2 + name.length + 1) === -1) {
      const code = errno(c);
      if (code === EAGAIN) return { state: "served" };
      if (code === ECONNREFUSED) return { state: "refused" };
      if (code === ENOENT) return { state: "absent" };
      if (code === EACCES) return { state: "denied" };
      return { state: "failed", why: reason(code) };
    }
    const credentials = new Uint8Array(12); // struct ucred { pid_t pid; uid_t uid; gid_t gid; }
    const length = new Uint32Array([credentials.length]);
    if (c.getsockopt(fd, SOL_SOCKET, SO_PEERCRED, credentials, new Uint8Array(length.buffer)) !== 0) {
      return { state: "served" };
    }
    const view = new DataView(credentials.buffer);
    const pid = view.getInt32(0, true);
    return { state: "served", pid: pid > 0 ? pid : undefined, uid: view.getUint32(4, true) };
  } finally {
    c.close(fd);
  }
}

/** The command name of process `pid` (/proc/PID/comm), if it can be read. */
export function processName(pid: number): string | undefined {
  const c = load();
  return c ? readSmallFile(c, `/proc/${pid}/comm`)?.trim() || undefined : undefined;
}

const SIGXFSZ = 25;

/**
 * Ignores SIGXFSZ: a write past the file-size limit (`ulimit -f`) then fails with EFBIG, which
 * the writer reports, instead of killing the process with no word. Returns whether it was set.
 */
export function ignoreFileSizeSignal(): boolean {
  return ignoreSignals([SIGXFSZ]);
}

/**
 * The memory limit of this process's control group (cgroup v2 `memory.max`, v1
 * `memory.limit_in_bytes`; systemd's MemoryMax=, a container's --memory), the lowest on the way
 * up to the root, in bytes; undefined where there is none or it cannot be read.
 */
export function memoryLimit(): number | undefined {
  const c = load();
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

const O_PATH = 0o10000000;

/**
 * Gives the socket file just bound at `path` group `gid` (when given) and `mode`, without
 * following the path twice: it is opened once (O_PATH|O_NOFOLLOW), must be a socket of this
 * process's user, and is changed through that descriptor (fchownat on it; chmod on its
 * /proc/self/fd entry, which names the inode itself). So a file swapped in by another user who
 * may write to the directory (a symbolic link to /etc/shadow, say) is refused, never changed.
 * Returns why not, or undefined; null where libc cannot be opened (the caller does without).
 */
export function protectSocketFile(
  path: string,
  access: { mode: number; gid?: number },
): string | undefined | null {
  const c = load();
  if (!c?.statx) return null;
  const fd = c.open(cstring(path), O_PATH | O_NOFOLLOW | O_CLOEXEC, 0);
  if (fd === -1) return reason(errno(c));
  try {
    const status = statx(c, { fd });
    const uid = c.geteuid();
    if (status?.type !== "socket" || status.uid !== uid) {
      return `it was replaced right after the bind (now ${
        status ? `a ${status.type} of ${describeUid(status.uid)}` : "unknown"
      }); refusing to change it`;
    }
    if (
      access.gid !== undefined && c.fchownat(fd, cstring(""), 0xffff_ffff, access.gid, AT_EMPTY_PATH) !== 0
    ) {
      return reason(errno(c));
    }
    if (c.chmod(cstring(`/proc/self/fd/${fd}`), access.mode) === 0) return undefined;
    const code = errno(c);
    // Without /proc (a bare chroot): by the path, if it still names this file.
    if (code !== ENOENT || statx(c, { path })?.id !== status.id) return reason(code);
    return c.chmod(cstring(path), access.mode) === 0 ? undefined : reason(errno(c));
  } finally {
    c.close(fd);
  }
}
