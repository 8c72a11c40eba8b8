/**
 * The C library, for the few calls Deno has no API for: glibc's libc.so.6 through FFI, loaded
 * once (`libc()`; null where it cannot be opened, musl: each caller then does without), and what
 * its callers share: errno and its words, C strings, small /proc files, statx(2).
 * The calls themselves live by purpose beside this file: signals, lock, files, accounts,
 * sockets, descriptors, memory.
 */

export const REASONS: Readonly<Record<number, string>> = {
  1: "operation not permitted (immutable?)",
  2: "no such file or directory",
  13: "permission denied",
  27: "file too large (the file-size limit, ulimit -f?)",
  28: "no space left on device",
  30: "read-only file system",
};

/** The kernel's reason for errno `code`, in words where we know them. */
export function reason(code: number): string {
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
  getsockname: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
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

/** The loaded C library's symbols. */
export type Libc = NonNullable<ReturnType<typeof libc>>;

export function cstring(text: string): Uint8Array<ArrayBuffer> {
  return new TextEncoder().encode(text + "\0");
}

export function errno(c: Libc): number {
  return new Deno.UnsafePointerView(c.__errno_location()!).getInt32();
}

export function readSmallFile(c: Libc, path: string): string | undefined {
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

export const O_RDONLY = 0;

export const O_RDWR = 0o2;

export const O_CREAT = 0o100;

export const O_NOCTTY = 0o400;

export const O_NONBLOCK = 0o4000;

export const O_NOFOLLOW = 0o400000;

export const O_CLOEXEC = 0o2000000;

const AT_FDCWD = -100;

const AT_SYMLINK_NOFOLLOW = 0x100;

export const AT_EMPTY_PATH = 0x1000;

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
export function statx(c: Libc, target: { fd: number } | { path: string }): FileStatus | undefined {
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
  const c = libc();
  return c ? statx(c, { path }) : undefined;
}

/**
 * The text of a small file under /proc/self (4 KiB at most), read through libc: Deno's own
 * file API refuses /proc/self without --allow-all. Undefined where it cannot be read.
 */
export function readProcFile(path: string): string | undefined {
  const c = libc();
  return c ? readSmallFile(c, path) : undefined;
}

export const ENOENT = 2;

export const O_PATH = 0o10000000;

export const libc = libcLoader(SYMBOLS);
