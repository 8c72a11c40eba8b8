/**
 * The adaptor's one validated configuration. Everything the CLI and the environment say ends
 * here, checked once: later code never re-validates a string. Each setting's kind, range and
 * default come from the option table (`options.ts`); what is checked here besides is how
 * settings go together.
 */

import {
  type Endpoint,
  isLoopback,
  type ListenAddress,
  parseEndpoint,
  parseListenAddress,
  type Role,
  ROLES,
} from "./endpoint.ts";
import { UsageError } from "../errors.ts";
import {
  DEFAULTS,
  flagOf,
  type LogFormat,
  type LogLevel,
  type OptionKey,
  OPTIONS,
  type OptionSpec,
  type SubscriptionMode,
} from "./options.ts";

/** The whole configuration of one adaptor process; each field is one setting of `OPTIONS`. */
export interface Config {
  /** XSUB endpoints where gateway workers PUB-connect (`-b`). */
  readonly bind: readonly Endpoint[];
  /** XPUB endpoints where tracking services SUB-connect (`-p`). */
  readonly publish: readonly Endpoint[];
  /** Inbound SUB endpoints (`-l`); empty means the inbound channel is off. */
  readonly listen: readonly Endpoint[];
  /** Inbound PUSH endpoints where gateway workers PULL (`-u`); used only with `listen`. */
  readonly push: readonly Endpoint[];
  /** Log socket events and every forwarded message, with per-second rates (`-d`). */
  readonly debug: boolean;
  /** Run a test publisher into the main channel (`-t`, implies debug). */
  readonly test: boolean;
  /** Run a test sender and PULL receiver on the inbound channel (`-r`, implies debug). */
  readonly receiverTest: boolean;
  /** Per-peer send high-water mark of the adaptor's sockets, in messages (0 = none). */
  readonly sndhwm: number;
  /** Per-peer receive high-water mark of the adaptor's sockets, in messages (0 = none). */
  readonly rcvhwm: number;
  /** TCP keepalive idle time in seconds before probes start; 0 leaves keepalive off. */
  readonly tcpKeepalive: number;
  /** First reconnect delay of connecting endpoints (`>`), in milliseconds. */
  readonly reconnectIvl: number;
  /** Longest reconnect delay: libzmq doubles the delay up to this (0 = no back-off). */
  readonly reconnectIvlMax: number;
  /** How long shutdown waits to deliver queued messages, in milliseconds. */
  readonly linger: number;
  /** Largest inbound frame in bytes; a peer sending a larger one is disconnected. 0 = no limit. */
  readonly maxMessageSize: number;
  /**
   * Largest inbound frame on the XPUB, whose only inbound frames are subscriptions (a 1-byte
   * flag and the topic); a subscriber sending a larger one is disconnected. 0 = no limit of its
   * own (--max-message-size applies).
   */
  readonly maxSubscriptionSize: number;
  /** How long a new connection may take to finish the ZeroMQ handshake, in ms. 0 = no limit. */
  readonly handshakeTimeout: number;
  /** Interval of ZMTP heartbeats (PING) on every connection, in ms. 0 = off. */
  readonly heartbeatInterval: number;
  /** A connection silent this long after a PING is dropped (also the TTL we ask peers to use), in ms. */
  readonly heartbeatTimeout: number;
  /** TCP_USER_TIMEOUT: sent data unacknowledged this long drops the connection, in ms. 0 = kernel's. */
  readonly tcpUserTimeout: number;
  /** Bytes libzmq encodes into one write to a connection (ZMQ_OUT_BATCH_SIZE). */
  readonly outBatchSize: number;
  /** libzmq I/O threads. */
  readonly ioThreads: number;
  /**
   * Connections each bound tcp socket may hold (`--max-connections`); at the cap it stops
   * listening until they are nine tenths of it. 0: what the descriptor limit leaves, shared out
   * (`connectionBudget`), so that the network can never take the last descriptors.
   */
  readonly maxConnections: number;
  /**
   * Denials (CURVE) from one host within 10 s after which the kernel drops the host's new
   * connections to that socket for 60 s (`--block-after-denials`, `SourceThrottle`); 0: never.
   */
  readonly blockAfterDenials: number;
  /**
   * Seconds the XSUB may go without a single connected publisher before the adaptor warns and
   * `/healthz` reports it (`--publisher-grace`; 0: never). Gateway workers connect when nginx
   * starts, whatever the traffic, so none for this long means they cannot reach the adaptor.
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
  /** Permissions given to every ipc socket file the adaptor binds (`--ipc-mode`). */
  readonly ipcMode: number;
  /** Group (name or gid) given to every ipc socket file the adaptor binds (`--ipc-group`). */
  readonly ipcGroup?: string;
  /** Where to serve `/metrics` and `/healthz` over HTTP (`--metrics`); undefined: off. */
  readonly metrics?: ListenAddress;
}

// Config has exactly one field per setting of the option table (checked when type-checked).
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const _oneFieldPerSetting: Same<keyof Config, OptionKey> = true;

/** The settings a `Config` is made of, before validation: endpoint lists as text. */
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

/** The smallest --max-subscription-size that lets CURVE clients shake hands (with room for metadata). */
const MIN_CURVE_SUBSCRIPTION_SIZE = 512;

/**
 * Builds the validated `Config` from raw values, filling defaults. Throws `UsageError` for any
 * bad value or combination, naming the setting by its flag, or by `names[key]` (the variable a
 * value came from).
 */
export function makeConfig(
  input: ConfigInput = {},
  names: Partial<Record<OptionKey, string>> = {},
): Config {
  const nameOf = (key: OptionKey) => names[key] ?? flagOf(OPTIONS.find((o) => o.key === key)!);
  const values: Record<string, unknown> = {};
  for (const option of OPTIONS as readonly OptionSpec[]) {
    const key = option.key as OptionKey;
    const given = (input as Record<string, unknown>)[key];
    values[key] = checked(option, given ?? option.default, names[key]);
  }
  const settings = values as Omit<Config, Role>;

  const endpoints = (role: Role, fallback: string[] = []) => {
    const given = input[role] ?? [];
    const name = names[role] ?? ROLES[role].flag;
    return (given.length > 0 ? given : fallback).map((text) => parseEndpoint(text, role, name));
  };
  const inbound = (input.listen ?? []).length > 0 || settings.receiverTest;
  const config: Config = {
    ...settings,
    bind: endpoints("bind", [DEFAULTS.bind]),
    publish: endpoints("publish", [DEFAULTS.publish]),
    listen: inbound ? endpoints("listen", [LISTEN_WITH_RECEIVER_TEST]) : [],
    push: inbound ? endpoints("push", [DEFAULTS.push]) : [],
    debug: settings.debug || settings.test || settings.receiverTest,
  };
  checkDistinct([["bind", config.bind], ["publish", config.publish], ["listen", config.listen], [
    "push",
    config.push,
  ]]);
  checkTogether(config, nameOf);
  return config;
}

/** The inbound SUB's endpoint when `-r` asks for the inbound channel without `-l`. */
export const LISTEN_WITH_RECEIVER_TEST = "tcp://127.0.0.1:5000";

/** One setting's value, checked by its kind; `name` is the variable it came from, if one did. */
function checked(option: OptionSpec, value: unknown, name = flagOf(option)): unknown {
  const kind = option.kind;
  switch (kind.type) {
    case "endpoints":
      return value; // parsed with the roles, below
    case "switch":
      return value === true;
    case "integer":
      return integer(name, value as number, kind.min, kind.max);
    case "choice":
      return oneOf(name, String(value), kind.values);
    case "path":
      return optionalText(value as string | undefined);
    case "octal":
      return fileMode(name, value as string | number);
    case "group": {
      const text = optionalText(value as string | undefined);
      return text === undefined ? undefined : groupName(name, text);
    }
    case "address":
      return value === undefined ? undefined : parseListenAddress(value as string, name);
  }
}

/** What no single setting can check: the settings that need each other. */
function checkTogether(config: Config, nameOf: (key: OptionKey) => string): void {
  const { curveCert, curveClients, curveServers, maxSubscriptionSize } = config;
  if (curveServers !== undefined && curveCert === undefined) {
    throw new UsageError(
      `${
        nameOf("curveServers")
      } '${curveServers}': needs --curve-cert (the adaptor's own key pair, as a CURVE client)`,
    );
  }
  if (curveClients !== undefined && curveCert === undefined) {
    throw new UsageError(
      `${nameOf("curveClients")} '${curveClients}': needs --curve-cert (the server's secret certificate)`,
    );
  }
  // The limit applies to every frame a subscriber sends, its handshake too: a CURVE client's
  // INITIATE (keys, vouch, metadata) is ~270 bytes.
  if (
    curveCert !== undefined && maxSubscriptionSize > 0 && maxSubscriptionSize < MIN_CURVE_SUBSCRIPTION_SIZE
  ) {
    throw new UsageError(
      `${
        nameOf("maxSubscriptionSize")
      } '${maxSubscriptionSize}': at least ${MIN_CURVE_SUBSCRIPTION_SIZE} with ` +
        `--curve-cert (a CURVE client's handshake is a ~270-byte frame, which the limit applies to)`,
    );
  }
  const exposed = config.subscriptions === "forward"
    ? forwardExposure(config.publish, curveClients, curveServers)
    : undefined;
  if (exposed) {
    throw new UsageError(
      `${nameOf("subscriptions")} forward: XPUB ${exposed.address} is reachable from the network without ` +
        `authenticated subscribers (${
          exposed.mode === "bind" ? "--curve-clients" : "--curve-servers"
        }), and any ` +
        "peer could cancel the subscriptions of every other; use --subscriptions local (the default), CURVE, " +
        "or a loopback or ipc endpoint",
    );
  }
  // The timeout is also the TTL peers apply to us: shorter than the interval, they would drop
  // the adaptor between two PINGs.
  if (config.heartbeatInterval > 0 && config.heartbeatTimeout <= config.heartbeatInterval) {
    throw new UsageError(
      `${
        nameOf("heartbeatTimeout")
      } '${config.heartbeatTimeout}': must be longer than --heartbeat-interval ` +
        `(${config.heartbeatInterval})`,
    );
  }
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

function groupName(name: string, text: string): string {
  if (/^\d+$/.test(text) || /^[A-Za-z_][A-Za-z0-9_.-]*\$?$/.test(text)) return text;
  throw new UsageError(`${name} '${text}': expected a group name or a numeric gid`);
}

/**
 * The same address twice is a mistake libzmq would report late or not at all: bound twice it
 * fails at start-up; bound by one socket and connected by another, the adaptor would feed itself.
 */
function checkDistinct(lists: [Role, readonly Endpoint[]][]): void {
  const seen = new Map<string, { role: Role; mode: Endpoint["mode"] }>();
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

function oneOf(flag: string, value: string, allowed: readonly string[]): string {
  if (!allowed.includes(value)) {
    throw new UsageError(`${flag} '${value}': expected one of ${allowed.join(", ")}`);
  }
  return value;
}
