/**
 * Descriptors: how many this process has open (/proc/self/fd), and the RLIMIT_NOFILE limit,
 * raised from soft to hard at start so that the network cannot take the last ones.
 */

import { type Libc, libc, O_CLOEXEC, O_RDONLY, statx } from "./libc.ts";

/** How many descriptors this process has open now (/proc/self/fd), or undefined without libc. */
export function openDescriptors(): number | undefined {
  const c = libc();
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
  const c = libc();
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
  const c = libc();
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
