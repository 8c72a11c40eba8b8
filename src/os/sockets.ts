/**
 * Socket calls Deno has no API for: a one-instruction BPF filter that makes a listener drop new
 * connections' SYNs (the connection cap), and who serves a unix socket file (SO_PEERCRED).
 */

import { ENOENT, errno, libc, reason } from "./libc.ts";

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

/**
 * Takes off whatever socket filter `fd` has: one a previous process left on a listening socket
 * that outlives it (systemd's), e.g. the connection cap's drop-everything. Returns whether the
 * socket has none now.
 */
export function clearListenerFilter(fd: number): boolean {
  listenerFilters.delete(fd);
  const c = libc();
  if (!c) return false;
  const rc = c.setsockopt(fd, SOL_SOCKET, SO_DETACH_FILTER, new Uint8Array(4), 4);
  return rc === 0 || errno(c) === ENOENT; // no filter was attached
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
  const c = libc();
  if (!c) return false;
  const filter = listenerProgram(listenerFilters.get(fd)!);
  if (!filter) {
    const rc = c.setsockopt(fd, SOL_SOCKET, SO_DETACH_FILTER, new Uint8Array(4), 4);
    return rc === 0 || errno(c) === ENOENT; // no filter was attached
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

const SO_TYPE = 3;

const SO_ACCEPTCONN = 30;

const AF_INET = 2;

const AF_INET6 = 10;

/** An `int` socket option of `fd`; undefined when the kernel refuses it (not a socket). */
function intOption(c: NonNullable<ReturnType<typeof libc>>, fd: number, option: number): number | undefined {
  const value = new Int32Array(1);
  const length = new Uint32Array([4]);
  const rc = c.getsockopt(
    fd,
    SOL_SOCKET,
    option,
    new Uint8Array(value.buffer),
    new Uint8Array(length.buffer),
  );
  return rc === 0 ? value[0] : undefined;
}

/**
 * What the descriptor `fd` (one we were handed, e.g. by systemd) listens on, as a libzmq
 * endpoint: `ipc:///PATH` or `tcp://HOST:PORT` (IPv6 in brackets, its shortest form); or why it
 * is not a listening stream socket of those families. Undefined where libc cannot be opened.
 */
export function listeningEndpoint(fd: number): { endpoint: string } | { why: string } | undefined {
  const c = libc();
  if (!c) return undefined;
  const type = intOption(c, fd, SO_TYPE);
  if (type === undefined) return { why: `not a socket (${reason(errno(c))})` };
  if (type !== SOCK_STREAM) return { why: "not a stream socket (ListenStream= makes one)" };
  if (intOption(c, fd, SO_ACCEPTCONN) !== 1) return { why: "not listening" };
  const address = new Uint8Array(128); // struct sockaddr_storage
  const length = new Uint32Array([address.length]);
  if (c.getsockname(fd, address, new Uint8Array(length.buffer)) !== 0) return { why: reason(errno(c)) };
  const view = new DataView(address.buffer);
  const family = view.getUint16(0, true);
  if (family === AF_UNIX) {
    const path = address.subarray(2, length[0]);
    const end = path.indexOf(0);
    const name = new TextDecoder().decode(end === -1 ? path : path.subarray(0, end));
    if (name === "") return { why: "an abstract or unnamed unix socket" };
    return { endpoint: `ipc://${name}` };
  }
  const port = view.getUint16(2, false);
  if (family === AF_INET) return { endpoint: `tcp://${address.subarray(4, 8).join(".")}:${port}` };
  if (family === AF_INET6) {
    const groups = Array.from({ length: 8 }, (_, i) => view.getUint16(8 + 2 * i, false).toString(16));
    // The URL parser writes an IPv6 address in its shortest form.
    return { endpoint: `tcp://${new URL(`http://[${groups.join(":")}]:1`).hostname}:${port}` };
  }
  return { why: `address family ${family}` };
}

const IPPROTO_TCP = 6;

const TCP_INFO = 11;

/** `struct tcp_info`'s `tcpi_rtt` (µs): the kernel's smoothed round-trip time of the connection. */
const TCPI_RTT_OFFSET = 68;

/**
 * The round-trip time of the tcp connection `fd` as the kernel measures it (from its handshake
 * on), in ms; undefined when `fd` is no tcp socket (ipc) or libc cannot be opened.
 */
export function tcpRoundTripMs(fd: number): number | undefined {
  const c = libc();
  if (!c || fd < 0) return undefined;
  const info = new Uint8Array(232);
  const length = new Uint32Array([info.length]);
  if (c.getsockopt(fd, IPPROTO_TCP, TCP_INFO, info, new Uint8Array(length.buffer)) !== 0) return undefined;
  if (length[0] < TCPI_RTT_OFFSET + 4) return undefined;
  return new DataView(info.buffer).getUint32(TCPI_RTT_OFFSET, true) / 1000;
}
