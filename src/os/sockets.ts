/**
 * Socket calls Deno has no API for: a one-instruction BPF filter that makes a listener drop new
 * connections' SYNs (the connection cap), and who serves a unix socket file (SO_PEERCRED).
 */

import { ENOENT, errno, libc, reason } from "./libc.ts";

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
  const c = libc();
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
  const c = libc();
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
