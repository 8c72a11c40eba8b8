/**
 * The adaptor's one validated configuration, and the endpoint grammar.
 *
 * Everything the CLI and the environment say ends here, checked once: later code never
 * re-validates a string. Knows nothing of the CLI or of ZeroMQ's API, only of its address
 * syntax (`tcp://HOST:PORT`, `ipc:///path`, `ipc://@abstract`, `inproc://name`) and of
 * CZMQ's prefixes: `@` binds, `>` connects, no prefix takes the role's default.
 */

import { UsageError } from "./errors.ts";

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

/** Log levels, lowest first. */
export const LOG_LEVELS = ["debug", "info", "warning", "error"] as const;
export type LogLevel = typeof LOG_LEVELS[number];

/** Log output formats. */
export const LOG_FORMATS = ["text", "json"] as const;
export type LogFormat = typeof LOG_FORMATS[number];

/** Where subscriptions are kept (`--subscriptions`): at the gateway's workers, or here. */
export const SUBSCRIPTION_MODES = ["forward", "local"] as const;
export type SubscriptionMode = typeof SUBSCRIPTION_MODES[number];

/** A TCP address for an HTTP listener, e.g. the metrics server's `127.0.0.1:6002`. */
export interface ListenAddress {
  /** An IP address or host name; `0.0.0.0` for all IPv4 interfaces. */
  readonly hostname: string;
  /** 0 asks the system for any free port. */
  readonly port: number;
}

/** The whole configuration of one adaptor process. */
export interface Config {
  /** XSUB endpoints where gateway workers PUB-connect (`-b`). @default `ipc:///tmp/nginx_queue_listen` */
  readonly bind: readonly Endpoint[];
  /** XPUB endpoints where tracking services SUB-connect (`-p`). @default `tcp://0.0.0.0:6001` */
  readonly publish: readonly Endpoint[];
  /** Inbound SUB endpoints (`-l`); empty means the inbound channel is off. @default `tcp://127.0.0.1:5000` with `-r` alone; else none */
  readonly listen: readonly Endpoint[];
  /** Inbound PUSH endpoints where gateway workers PULL (`-u`); used only with `listen`. @default `ipc:///tmp/nginx_queue_push` */
  readonly push: readonly Endpoint[];
  /** Log socket events and every forwarded message, with per-second rates (`-d`). @default false */
  readonly debug: boolean;
  /** Run a test publisher into the main channel (`-t`, implies debug). @default false */
  readonly test: boolean;
  /** Run a test sender and PULL receiver on the inbound channel (`-r`, implies debug). @default false */
  readonly receiverTest: boolean;
  /** Per-peer send high-water mark of the adaptor's sockets, in messages (0 = none). @default 10000 */
  readonly sndhwm: number;
  /** Per-peer receive high-water mark of the adaptor's sockets, in messages (0 = none). @default 10000 */
  readonly rcvhwm: number;
  /** TCP keepalive idle time in seconds before probes start; 0 leaves keepalive off. @default 60 */
  readonly tcpKeepalive: number;
  /** First reconnect delay of connecting endpoints (`>`), in milliseconds. @default 100 */
  readonly reconnectIvl: number;
  /** Longest reconnect delay: libzmq doubles the delay up to this (0 = no back-off). @default 5000 */
  readonly reconnectIvlMax: number;
  /** How long shutdown waits to deliver queued messages, in milliseconds. @default 500 */
  readonly linger: number;
  /** Largest inbound frame in bytes; a peer sending a larger one is disconnected. 0 = no limit. @default 65536 */
  readonly maxMessageSize: number;
  /**
   * Largest inbound frame on the XPUB, whose only inbound frames are subscriptions (a 1-byte
   * flag and the topic); a subscriber sending a larger one is disconnected. 0 = no limit of its
   * own (--max-message-size applies).
   * @default 1024
   */
  readonly maxSubscriptionSize: number;
  /** How long a new connection may take to finish the ZeroMQ handshake, in ms. 0 = no limit. @default 5000 */
  readonly handshakeTimeout: number;
  /** Interval of ZMTP heartbeats (PING) on every connection, in ms. 0 = off. @default 10000 */
  readonly heartbeatInterval: number;
  /** A connection silent this long after a PING is dropped (also the TTL we ask peers to use), in ms. @default 30000 */
  readonly heartbeatTimeout: number;
  /** TCP_USER_TIMEOUT: sent data unacknowledged this long drops the connection, in ms. 0 = kernel's. @default 30000 */
  readonly tcpUserTimeout: number;
  /** Bytes libzmq encodes into one write to a connection (ZMQ_OUT_BATCH_SIZE). @default 65536 */
  readonly outBatchSize: number;
  /** libzmq I/O threads. @default 1 */
  readonly ioThreads: number;
  /**
   * Connections each bound tcp socket may hold (`--max-connections`); at the cap it stops
   * listening until they are nine tenths of it. 0: what the descriptor limit leaves, shared out
   * (`connectionBudget`), so that the network can never take the last descriptors.
   * @default 0
   */
  readonly maxConnections: number;
  /**
   * Denials (CURVE) from one host within 10 s after which the kernel drops the host's new
   * connections to that socket for 60 s (`--block-after-denials`, `SourceThrottle`); 0: never.
   * @default 10
   */
  readonly blockAfterDenials: number;
  /**
   * Seconds the XSUB may go without a single connected publisher before the adaptor warns and
   * `/healthz` reports it (`--publisher-grace`; 0: never). Gateway workers connect when nginx
   * starts, whatever the traffic, so none for this long means they cannot reach the adaptor.
   * @default 30
   */
  readonly publisherGrace: number;
  /**
   * Milliseconds the main channel waits at start for its first subscriber before it forwards
   * (`--subscriber-wait`; 0: forwards at once). After a restart the gateway's workers flush what
   * they queued while the adaptor was down (their PUB keeps its pipe and subscriptions across
   * the reconnect) as soon as they reconnect, often before the tracking services are back;
   * forwarding then would hand it to an XPUB with no subscriber, which discards it. Waiting
   * keeps it in the XSUB's queue (`--rcvhwm`) until a subscription has come in (and 20 ms more;
   * `SubscriberWait`), or until this has passed.
   * @default 1000
   */
  readonly subscriberWait: number;
  readonly logLevel: LogLevel;
  readonly logFormat: LogFormat;
  /**
   * `local`: the workers are subscribed to everything once and the adaptor filters at its own
   * PUB, so every worker holds one subscription whatever the subscribers do, and no subscriber
   * can cancel another's. `forward`: tracking services' subscriptions travel to the gateway's
   * workers, which send only what someone subscribed to (the original's contract); any peer of
   * the XPUB can then cancel a topic for all (libzmq 4.3.5 passes an unsubscription it has no
   * record of), so it needs authenticated subscribers where the XPUB is reachable from the
   * network (`forwardExposure`). `--subscriptions`.
   * @default `local`
   */
  readonly subscriptions: SubscriptionMode;
  /** Secret CURVE certificate (`--curve-cert`): makes the XPUB and the inbound SUB CURVE servers. */
  readonly curveCert?: string;
  /** Directory of client certificates (`--curve-clients`): only those keys may connect. */
  readonly curveClients?: string;
  /**
   * Directory of servers' public certificates (`--curve-servers`), like ssh's known_hosts: every
   * connecting (`>`) tcp endpoint is a CURVE client of the server whose certificate is
   * `DIR/HOST:PORT`, else `DIR/HOST` (HOST and PORT as written in the endpoint).
   */
  readonly curveServers?: string;
  /** Permissions given to every ipc socket file the adaptor binds (`--ipc-mode`). @default `0660` */
  readonly ipcMode: number;
  /** Group (name or gid) given to every ipc socket file the adaptor binds (`--ipc-group`). */
  readonly ipcGroup?: string;
  /** Where to serve `/metrics` and `/healthz` over HTTP (`--metrics`); undefined: off. */
  readonly metrics?: ListenAddress;
}

/** Defaults of every setting; the endpoint defaults are the C original's. */
/**
 * The longest `--linger`: a stop (SIGINT/SIGTERM) ends within 2 s, and lingering is the part of
 * it spent delivering what is still queued; the rest is for the proxies and the files.
 */
export const MAX_LINGER_MS = 1500;

export const DEFAULTS = {
  bind: "ipc:///tmp/nginx_queue_listen",
  publish: "tcp://0.0.0.0:6001",
  /** Used only when `-r` asks for the inbound channel without `-l`. */
  listen: "tcp://127.0.0.1:5000",
  push: "ipc:///tmp/nginx_queue_push",
  debug: false,
  test: false,
  receiverTest: false,
  sndhwm: 10_000,
  rcvhwm: 10_000,
  tcpKeepalive: 60,
  reconnectIvl: 100,
  reconnectIvlMax: 5_000,
  linger: 500,
  /** Usage events are a few hundred bytes; 64 KiB leaves room and bounds what one frame can cost. */
  maxMessageSize: 65_536,
  /**
   * Each subscription is kept by the adaptor and by every publisher (each gateway worker):
   * 200 subscriptions of 60 KB grew each pyzmq publisher by 375 MB (issue 13). Topics are
   * short prefixes; 1 KiB leaves room and bounds that to what this many subscriptions cost.
   */
  maxSubscriptionSize: 1024,
  /** libzmq's 30 s lets idle or hostile connections hold descriptors; a real handshake takes ms. */
  handshakeTimeout: 5_000,
  /** Without heartbeats a dead TCP peer (power loss, partition) is noticed only by TCP keepalive. */
  heartbeatInterval: 10_000,
  heartbeatTimeout: 30_000,
  /**
   * Heartbeats cannot catch a dead subscriber while traffic to it is pending (the PING waits
   * behind the unsent data); the kernel's own limit is ~15 minutes of retransmissions.
   */
  tcpUserTimeout: 30_000,
  /**
   * libzmq's default is 8192 bytes per write: 124 events of 64 bytes, so a subscriber fed at a
   * million events a second costs 8000 send() calls a second. 64 KiB delivered 1.32x as much
   * in the fan-out to 8 subscribers, at three quarters of the CPU per message (docs/tuning.md).
   */
  outBatchSize: 65_536,
  ioThreads: 1,
  maxConnections: 0,
  blockAfterDenials: 10,
  publisherGrace: 30,
  subscriberWait: 1000,
  logLevel: "info" as LogLevel,
  logFormat: "text" as LogFormat,
  subscriptions: "local" as SubscriptionMode,
  /** Owner and group may connect (publish, pull); others may not. */
  ipcMode: "0660",
} as const;

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
 * Parses one endpoint given for `role`. Throws `UsageError` naming the flag and the value.
 *
 * @example parseEndpoint(">tcp://node1:6001", "bind") // XSUB connecting to an edge's XPUB
 */
export function parseEndpoint(text: string, role: Role): Endpoint {
  const { flag, defaultMode } = ROLES[role];
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

function checkTcp(rest: string, mode: Mode, bad: (why: string) => UsageError): void {
  // HOST:PORT, where HOST is an interface name, an IPv4 address, [IPv6], a host name or '*'.
  const match = /^(\[[0-9a-fA-F:.%\w]+\]|[^:\[\]\/\s;]+):([^:]*)$/.exec(rest);
  if (!match) throw bad("expected tcp://HOST:PORT (HOST: interface, IP, [IPv6], name or *)");
  const [, host, port] = match;
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
  const match = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.*-]*):(\d{1,5})$/.exec(text.trim());
  if (!match) throw bad();
  const [, host, portText] = match;
  const port = Number(portText);
  if (port > 65535) throw new UsageError(`${flag} '${text}': port ${port} is not from 0 to 65535`);
  if (host === "" || host === "*") return { hostname: "0.0.0.0", port };
  if (host.includes("*")) throw bad();
  return { hostname: host.startsWith("[") ? host.slice(1, -1) : host, port };
}

/** The endpoint lists and settings a `Config` is made of, before validation. */
export type ConfigInput =
  & {
    [K in Role]?: readonly string[];
  }
  & Partial<Omit<Config, Role | "ipcMode" | "metrics">>
  & {
    /** Octal text ("0660", "660") or a number. */
    ipcMode?: string | number;
    readonly metrics?: string;
  };

/**
 * Builds the validated `Config` from raw values, filling defaults.
 * Throws `UsageError` for any bad value or combination.
 */
export function makeConfig(input: ConfigInput = {}): Config {
  const receiverTest = input.receiverTest ?? DEFAULTS.receiverTest;
  const test = input.test ?? DEFAULTS.test;
  const listenGiven = input.listen ?? [];
  const endpoints = (role: Role, given: readonly string[] | undefined, fallback: string[]) =>
    (given && given.length > 0 ? given : fallback).map((text) => parseEndpoint(text, role));

  const bind = endpoints("bind", input.bind, [DEFAULTS.bind]);
  const publish = endpoints("publish", input.publish, [DEFAULTS.publish]);
  const inbound = listenGiven.length > 0 || receiverTest;
  const listen = inbound ? endpoints("listen", listenGiven, [DEFAULTS.listen]) : [];
  const push = inbound ? endpoints("push", input.push, [DEFAULTS.push]) : [];
  checkDistinct([["bind", bind], ["publish", publish], ["listen", listen], ["push", push]]);
  const curveCert = optionalText(input.curveCert);
  const curveClients = optionalText(input.curveClients);
  const curveServers = optionalText(input.curveServers);
  if (curveServers !== undefined && curveCert === undefined) {
    throw new UsageError(
      `--curve-servers '${curveServers}': needs --curve-cert (the adaptor's own key pair, as a CURVE client)`,
    );
  }
  if (curveClients !== undefined && curveCert === undefined) {
    throw new UsageError(
      `--curve-clients '${curveClients}': needs --curve-cert (the server's secret certificate)`,
    );
  }
  const maxSubscriptionSize = integer(
    "--max-subscription-size",
    input.maxSubscriptionSize ?? DEFAULTS.maxSubscriptionSize,
    0,
    MAX_MESSAGE_SIZE_LIMIT,
  );
  // The limit applies to every frame a subscriber sends, its handshake commands too: a CURVE
  // client's INITIATE (keys, vouch, metadata) is ~270 bytes (measured: a limit of 260 refused a
  // libzmq 4.3.5 SUB, 280 admitted it).
  if (
    curveCert !== undefined && maxSubscriptionSize > 0 && maxSubscriptionSize < MIN_CURVE_SUBSCRIPTION_SIZE
  ) {
    throw new UsageError(
      `--max-subscription-size '${maxSubscriptionSize}': at least ${MIN_CURVE_SUBSCRIPTION_SIZE} with --curve-cert ` +
        `(a CURVE client's handshake is a ~270-byte frame, which the limit applies to)`,
    );
  }

  const subscriptions = oneOf(
    "--subscriptions",
    input.subscriptions ?? DEFAULTS.subscriptions,
    SUBSCRIPTION_MODES,
  );
  const exposed = subscriptions === "forward"
    ? forwardExposure(publish, curveClients, curveServers)
    : undefined;
  if (exposed) {
    throw new UsageError(
      `--subscriptions forward: XPUB ${exposed.address} is reachable from the network without authenticated ` +
        `subscribers (${
          exposed.mode === "bind" ? "--curve-clients" : "--curve-servers"
        }), and any peer could ` +
        "cancel the subscriptions of every other; use --subscriptions local (the default), CURVE, or a " +
        "loopback or ipc endpoint",
    );
  }

  return {
    bind,
    publish,
    listen,
    push,
    test,
    receiverTest,
    debug: (input.debug ?? DEFAULTS.debug) || test || receiverTest,
    sndhwm: integer("--sndhwm", input.sndhwm ?? DEFAULTS.sndhwm, 0, 100_000_000),
    rcvhwm: integer("--rcvhwm", input.rcvhwm ?? DEFAULTS.rcvhwm, 0, 100_000_000),
    tcpKeepalive: integer("--tcp-keepalive", input.tcpKeepalive ?? DEFAULTS.tcpKeepalive, 0, 86_400),
    reconnectIvl: integer("--reconnect-ivl", input.reconnectIvl ?? DEFAULTS.reconnectIvl, 1, 600_000),
    reconnectIvlMax: integer(
      "--reconnect-ivl-max",
      input.reconnectIvlMax ?? DEFAULTS.reconnectIvlMax,
      0,
      3_600_000,
    ),
    // SIGINT/SIGTERM must end the adaptor within 2 s: the linger is part of that budget.
    linger: integer("--linger", input.linger ?? DEFAULTS.linger, 0, MAX_LINGER_MS),
    maxMessageSize: integer(
      "--max-message-size",
      input.maxMessageSize ?? DEFAULTS.maxMessageSize,
      0,
      MAX_MESSAGE_SIZE_LIMIT,
    ),
    maxSubscriptionSize,
    handshakeTimeout: integer(
      "--handshake-timeout",
      input.handshakeTimeout ?? DEFAULTS.handshakeTimeout,
      0,
      3_600_000,
    ),
    ...heartbeat(input),
    tcpUserTimeout: integer(
      "--tcp-user-timeout",
      input.tcpUserTimeout ?? DEFAULTS.tcpUserTimeout,
      0,
      3_600_000,
    ),
    outBatchSize: integer(
      "--out-batch-size",
      input.outBatchSize ?? DEFAULTS.outBatchSize,
      1024,
      16_777_216,
    ),
    ioThreads: integer("--io-threads", input.ioThreads ?? DEFAULTS.ioThreads, 1, 64),
    maxConnections: integer(
      "--max-connections",
      input.maxConnections ?? DEFAULTS.maxConnections,
      0,
      10_000_000,
    ),
    blockAfterDenials: integer(
      "--block-after-denials",
      input.blockAfterDenials ?? DEFAULTS.blockAfterDenials,
      0,
      1_000_000,
    ),
    publisherGrace: integer("--publisher-grace", input.publisherGrace ?? DEFAULTS.publisherGrace, 0, 86_400),
    subscriberWait: integer("--subscriber-wait", input.subscriberWait ?? DEFAULTS.subscriberWait, 0, 60_000),
    logLevel: oneOf("--log-level", input.logLevel ?? DEFAULTS.logLevel, LOG_LEVELS),
    logFormat: oneOf("--log-format", input.logFormat ?? DEFAULTS.logFormat, LOG_FORMATS),
    subscriptions,
    ...(curveCert !== undefined ? { curveCert } : {}),
    ...(curveClients !== undefined ? { curveClients } : {}),
    ...(curveServers !== undefined ? { curveServers } : {}),
    ipcMode: fileMode("--ipc-mode", input.ipcMode ?? DEFAULTS.ipcMode),
    ...(optionalText(input.ipcGroup) !== undefined ? { ipcGroup: groupName(input.ipcGroup!.trim()) } : {}),
    metrics: input.metrics === undefined ? undefined : parseListenAddress(input.metrics, "--metrics"),
  };
}

/** Whether a tcp endpoint's host (the last of `tcp://[src;]HOST:PORT`) is a loopback address. */
export function isLoopback(endpoint: Endpoint): boolean {
  if (endpoint.transport !== "tcp") return false;
  const target = endpoint.address.replace(/^tcp:\/\//, "").split(";").at(-1)!;
  const host = target.slice(0, target.lastIndexOf(":"));
  return /^(127\.[\d.]+|localhost|lo|\[::1\])$/.test(host);
}

/**
 * The first XPUB endpoint where `--subscriptions forward` would let unauthenticated peers of the
 * network in: a tcp endpoint off loopback that is not CURVE with known keys on both sides (bound:
 * `--curve-clients`; connecting: `--curve-servers`). ipc and inproc peers are local processes.
 */
export function forwardExposure(
  publish: readonly Endpoint[],
  curveClients: string | undefined,
  curveServers: string | undefined,
): Endpoint | undefined {
  return publish.find((e) =>
    e.transport === "tcp" && !isLoopback(e) &&
    (e.mode === "bind" ? curveClients === undefined : curveServers === undefined)
  );
}

/** The smallest --max-subscription-size that lets CURVE clients shake hands (with room for metadata). */
const MIN_CURVE_SUBSCRIPTION_SIZE = 512;

/** The largest --max-message-size accepted: 4 GiB. */
const MAX_MESSAGE_SIZE_LIMIT = 2 ** 32;

/** libzmq sends the TTL in deciseconds in 16 bits: at most 6553.5 s. */
const MAX_HEARTBEAT_MS = 6_553_500;

function heartbeat(input: ConfigInput): { heartbeatInterval: number; heartbeatTimeout: number } {
  const heartbeatInterval = integer(
    "--heartbeat-interval",
    input.heartbeatInterval ?? DEFAULTS.heartbeatInterval,
    0,
    MAX_HEARTBEAT_MS,
  );
  const heartbeatTimeout = integer(
    "--heartbeat-timeout",
    input.heartbeatTimeout ?? DEFAULTS.heartbeatTimeout,
    1,
    MAX_HEARTBEAT_MS,
  );
  // The timeout is also the TTL peers apply to us: shorter than the interval, they would
  // drop the adaptor between two PINGs.
  if (heartbeatInterval > 0 && heartbeatTimeout <= heartbeatInterval) {
    throw new UsageError(
      `--heartbeat-timeout '${heartbeatTimeout}': must be longer than --heartbeat-interval (${heartbeatInterval})`,
    );
  }
  return { heartbeatInterval, heartbeatTimeout };
}

function optionalText(value: string | undefined): string | undefined {
  return value === undefined || value.trim() === "" ? undefined : value.trim();
}

/** Permission bits from octal text: "0660", "660", "0o660". No setuid/setgid/sticky bits. */
export function fileMode(flag: string, value: string | number): number {
  if (typeof value === "number") {
    if (Number.isInteger(value) && value >= 0 && value <= 0o777) return value;
  } else {
    const match = /^\s*(?:0o?)?([0-7]{1,3})\s*$/i.exec(value);
    if (match) return parseInt(match[1], 8);
  }
  const shown = typeof value === "number" ? `0${value.toString(8)}` : value;
  throw new UsageError(`${flag} '${shown}': expected an octal mode from 000 to 0777, e.g. 0660`);
}

function groupName(text: string): string {
  if (/^\d+$/.test(text) || /^[A-Za-z_][A-Za-z0-9_.-]*\$?$/.test(text)) return text;
  throw new UsageError(`--ipc-group '${text}': expected a group name or a numeric gid`);
}

/**
 * The same address twice is a mistake libzmq would report late or not at all: bound twice it
 * fails at start-up; bound by one socket and connected by another, the adaptor would feed itself.
 */
function checkDistinct(lists: [Role, readonly Endpoint[]][]): void {
  const seen = new Map<string, { role: Role; mode: Mode }>();
  for (const [role, list] of lists) {
    for (const endpoint of list) {
      const other = seen.get(endpoint.address);
      if (other !== undefined) {
        const by = other.role === role ? "twice" : `also by ${ROLES[other.role].flag}`;
        const why = other.mode === endpoint.mode
          ? `used ${by}`
          : `used ${by}, once to bind and once to connect: the adaptor would connect to itself`;
        throw new UsageError(`${ROLES[role].flag} '${endpoint.address}': ${why}`);
      }
      seen.set(endpoint.address, { role, mode: endpoint.mode });
    }
  }
}

function integer(flag: string, value: number, min: number, max: number): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new UsageError(`${flag} '${value}': expected a whole number from ${min} to ${max}`);
  }
  return value;
}

function oneOf<T extends string>(flag: string, value: string, allowed: readonly T[]): T {
  if (!(allowed as readonly string[]).includes(value)) {
    throw new UsageError(`${flag} '${value}': expected one of ${allowed.join(", ")}`);
  }
  return value as T;
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
