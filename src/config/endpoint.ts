/**
 * The endpoint grammar, parsed once: libzmq's address syntax (`tcp://HOST:PORT`, `ipc:///path`,
 * `ipc://@abstract`, `inproc://name`) with CZMQ's prefixes (`@` binds, `>` connects, no prefix
 * takes the role's default), and the HOST:PORT of an HTTP listener.
 */

import { UsageError } from "../errors.ts";

/** Transports the adaptor accepts. */
export type Transport = "tcp" | "ipc" | "inproc";

/** Whether a socket binds the address or connects to it. */
export type Mode = "bind" | "connect";

/** One parsed endpoint of one socket. */
export interface Endpoint {
  /** The address as libzmq takes it, without a `@`/`>` prefix, e.g. `tcp://0.0.0.0:6001`. */
  readonly address: string;
  readonly transport: Transport;
  readonly mode: Mode;
  /** The socket file of a filesystem `ipc://` endpoint; undefined for abstract and others. */
  readonly ipcPath?: string;
}

/** A TCP address for an HTTP listener, e.g. the metrics server's `127.0.0.1:6002`. */
export interface ListenAddress {
  /** An IP address or host name; `0.0.0.0` for all IPv4 interfaces. */
  readonly hostname: string;
  /** 0 asks the system for any free port. */
  readonly port: number;
}

/** Each endpoint role: its flag (for messages) and what an unprefixed endpoint does. */
export const ROLES = {
  bind: { flag: "-b/--bind", socket: "XSUB", defaultMode: "bind" },
  publish: { flag: "-p/--publish", socket: "XPUB", defaultMode: "bind" },
  // The C original's SUB connected to a remote publisher; keep that default.
  listen: { flag: "-l/--listen", socket: "SUB", defaultMode: "connect" },
  push: { flag: "-u/--push", socket: "PUSH", defaultMode: "bind" },
} as const satisfies Record<string, { flag: string; socket: string; defaultMode: Mode }>;

export type Role = keyof typeof ROLES;

/** Longest path a Unix socket address holds (sun_path is 108 bytes with its NUL). */
const MAX_IPC_PATH = 107;

/**
 * Parses one endpoint given for `role`. Throws `UsageError` naming `flag` (the role's flag, or
 * the variable the value came from) and the value.
 *
 * @example parseEndpoint(">tcp://node1:6001", "bind") // XSUB connecting to an edge's XPUB
 */
export function parseEndpoint(text: string, role: Role, flag: string = ROLES[role].flag): Endpoint {
  const { defaultMode } = ROLES[role];
  const bad = (why: string) => new UsageError(`${flag} '${text}': ${why}`);
  let address = text.trim();
  let mode: Mode = defaultMode;
  if (address.startsWith("@")) [mode, address] = ["bind", address.slice(1)];
  else if (address.startsWith(">")) [mode, address] = ["connect", address.slice(1)];

  const match = /^([a-z0-9+.-]*):\/\/(.*)$/i.exec(address);
  if (!match) throw bad("expected TRANSPORT://ADDRESS, e.g. tcp://0.0.0.0:6001 or ipc:///tmp/q");
  const transport = match[1].toLowerCase();
  const rest = match[2];
  switch (transport) {
    case "tcp":
      checkTcp(rest, mode, bad);
      return { address: `tcp://${rest}`, transport, mode };
    case "ipc": {
      if (rest === "" || rest === "@") throw bad("ipc endpoint has no path");
      if (rest.length > MAX_IPC_PATH) {
        throw bad(`ipc path is ${rest.length} bytes, the limit is ${MAX_IPC_PATH}`);
      }
      if (rest.startsWith("@")) return { address: `ipc://${rest}`, transport, mode };
      if (rest === "*") throw bad("ipc wildcard paths are not supported: name the socket file");
      return { address: `ipc://${rest}`, transport, mode, ipcPath: rest };
    }
    case "inproc":
      if (rest === "") throw bad("inproc endpoint has no name");
      return { address: `inproc://${rest}`, transport, mode };
    default:
      throw bad(`unsupported transport '${transport}' (use tcp://, ipc:// or inproc://)`);
  }
}

/** `HOST:PORT` split at the colon that ends the host (an `[IPv6]` host keeps its brackets). */
export function splitHostPort(text: string): { host: string; port: string } | undefined {
  const match = /^(\[[^\]]*\]|[^\[\]]*?):([^:\]]*)$/.exec(text);
  return match ? { host: match[1], port: match[2] } : undefined;
}

/** Whether a tcp endpoint's host (the last of `tcp://[src;]HOST:PORT`) is a loopback address. */
export function isLoopback(endpoint: Endpoint): boolean {
  if (endpoint.transport !== "tcp") return false;
  const target = endpoint.address.replace(/^tcp:\/\//, "").split(";").at(-1)!;
  return /^(127\.[\d.]+|localhost|lo|\[::1\])$/.test(splitHostPort(target)?.host ?? "");
}

/** `host` and `port` as HOST:PORT, an IPv6 host in brackets. */
export function joinHostPort(host: string, port: number | string): string {
  return host.includes(":") && !host.startsWith("[") ? `[${host}]:${port}` : `${host}:${port}`;
}

function checkTcp(rest: string, mode: Mode, bad: (why: string) => UsageError): void {
  // HOST:PORT, where HOST is an interface name, an IPv4 address, [IPv6], a host name or '*'.
  const split = splitHostPort(rest);
  if (!split || !/^(\[[0-9a-fA-F:.%\w]+\]|[^:\[\]\/\s;]+)$/.test(split.host)) {
    throw bad("expected tcp://HOST:PORT (HOST: interface, IP, [IPv6], name or *)");
  }
  const { host, port } = split;
  if (mode === "connect" && host === "*") throw bad("cannot connect to '*': name a host");
  if (port === "*" || port === "0") {
    if (mode === "connect") throw bad("a connecting endpoint needs a fixed port");
    return;
  }
  if (!/^\d{1,5}$/.test(port) || Number(port) < 1 || Number(port) > 65535) {
    throw bad(`port '${port}' is not a number from 1 to 65535`);
  }
}

/**
 * Parses `HOST:PORT` for an HTTP listener: `127.0.0.1:6002`, `[::1]:6002`, a host name, or
 * `:6002` / `*:6002` for every IPv4 interface. Throws `UsageError` naming `flag` and the value.
 */
export function parseListenAddress(text: string, flag: string): ListenAddress {
  const bad = () =>
    new UsageError(`${flag} '${text}': expected HOST:PORT, e.g. 127.0.0.1:6002, [::1]:6002 or :6002`);
  const split = splitHostPort(text.trim());
  if (!split || !/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.*-]*)$/.test(split.host) || !/^\d{1,5}$/.test(split.port)) {
    throw bad();
  }
  const { host, port: portText } = split;
  const port = Number(portText);
  if (port > 65535) throw new UsageError(`${flag} '${text}': port ${port} is not from 0 to 65535`);
  if (host === "" || host === "*") return { hostname: "0.0.0.0", port };
  if (host.includes("*")) throw bad();
  return { hostname: host.startsWith("[") ? host.slice(1, -1) : host, port };
}

/**
 * How a local peer (test publisher, debug subscriber) reaches `endpoint`: it connects where
 * the adaptor binds (to `resolved`, the address libzmq reports after a wildcard bind, with
 * the any-address made loopback), and binds where the adaptor connects.
 */
export function peerOf(endpoint: Endpoint, resolved = endpoint.address): { address: string; mode: Mode } {
  if (endpoint.mode === "connect") return { address: endpoint.address, mode: "bind" };
  const address = resolved
    .replace(/^tcp:\/\/(0\.0\.0\.0|\*):/, "tcp://127.0.0.1:")
    .replace(/^tcp:\/\/\[(::|\*)\]:/, "tcp://[::1]:");
  return { address, mode: "connect" };
}
