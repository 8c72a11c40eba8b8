/**
 * The adaptor: builds its channels from a `Config` and owns their whole lifecycle.
 *
 *   main     XSUB (-b) ──► XPUB (-p)    messages down, subscriptions up
 *   inbound  SUB  (-l) ──► PUSH (-u)    only when -l or -r is given
 *
 * Each channel is a native `Forwarder` (zmq_proxy_steerable). Around them: the ipc guard
 * (never take a live socket file), socket monitors, and the debug taps of `-d/-t/-r`.
 * `startAdaptor` either returns a running handle or throws with nothing left open.
 */

import { type Config, type Endpoint, peerOf, type Role, ROLES } from "./config.ts";
import { SentTimes, startDebugSubscriber, startInboundTest, startTestPublisher, type Tap } from "./debug.ts";
import { Forwarder, type ProxyStatistics } from "./engine.ts";
import { StartupError } from "./errors.ts";
import { assessHealth, type Health } from "./health.ts";
import { checkIpcPath, type OwnedSocketFile, ownSocketFile, removeOwnedFile } from "./ipc.ts";
import { log } from "./log.ts";
import { type Monitor, monitorSocket, type SocketEvent } from "./monitor.ts";
import {
  Context,
  type Socket,
  ZMQ_LAST_ENDPOINT,
  ZMQ_LINGER,
  ZMQ_PUSH,
  ZMQ_RCVHWM,
  ZMQ_SNDHWM,
  ZMQ_SUB,
  ZMQ_SUBSCRIBE,
  ZMQ_TCP_KEEPALIVE,
  ZMQ_TCP_KEEPALIVE_IDLE,
  ZMQ_XPUB,
  ZMQ_XSUB,
  ZmqError,
  zmqVersion,
} from "./zmq.ts";

const ZMQ_IPV6 = 42;

/** The two channels an adaptor runs. */
export type ChannelName = "main" | "inbound";

/** Observers of what happens inside a running adaptor (metrics, tests). */
export interface AdaptorHooks {
  /** Every socket event of every channel socket (monitors run when this or debug is set). */
  onSocketEvent?: (channel: ChannelName, role: Role, event: SocketEvent) => void;
}

/** A running adaptor. */
export interface AdaptorHandle {
  readonly config: Config;
  /** The addresses each role actually bound or connected (wildcard ports resolved). */
  readonly endpoints: Readonly<Record<Role, readonly string[]>>;
  /** The channels this adaptor runs: always "main", "inbound" with -l/-r. */
  readonly channels: readonly ChannelName[];
  /**
   * Exact forwarding counters of each running channel, asked of the proxies in parallel. With
   * `timeoutMs`, a channel whose proxy does not answer in time (blocked sending to a full
   * PUSH) is left out rather than awaited.
   */
  statistics(options?: { timeoutMs?: number }): Promise<Partial<Record<ChannelName, ProxyStatistics>>>;
  /** Ok while every proxy runs and every ipc socket file bound is still ours; else why not. */
  health(): Health;
  /** `health().ok`. */
  readonly healthy: boolean;
  /** Resolves (never rejects) if a channel's proxy ends while the adaptor was not stopping. */
  readonly failure: Promise<string>;
  /** Stops forwarding, closes everything within the linger, removes our ipc files. Idempotent. */
  stop(): Promise<void>;
}

interface Channel {
  readonly name: ChannelName;
  readonly forwarder: Forwarder;
}

/** Opens, binds and starts everything `config` asks for. Throws StartupError/UsageError. */
export async function startAdaptor(config: Config, hooks: AdaptorHooks = {}): Promise<AdaptorHandle> {
  // Refuse before touching anything: a live ipc path belongs to another process.
  for (const role of Object.keys(ROLES) as Role[]) {
    for (const endpoint of config[role]) {
      if (endpoint.mode === "bind" && endpoint.ipcPath) {
        const state = await checkIpcPath(endpoint.ipcPath, describe(role, endpoint));
        if (state === "stale") log().info("Replacing stale socket file {path}", { path: endpoint.ipcPath });
      }
    }
  }
  const ctx = new Context({ ioThreads: config.ioThreads });
  const sockets: Socket[] = [];
  const monitors: Monitor[] = [];
  const owned: OwnedSocketFile[] = [];
  const endpoints: Record<Role, string[]> = { bind: [], publish: [], listen: [], push: [] };
  const watch = config.debug || hooks.onSocketEvent !== undefined;
  const socketLog = log("socket");

  const open = (channel: ChannelName, role: Role, type: number): Socket => {
    const socket = ctx.socket(type);
    sockets.push(socket);
    applyOptions(socket, config, config[role]);
    if (type === ZMQ_SUB) socket.setBytes(ZMQ_SUBSCRIBE, "");
    if (watch) {
      const name = `${ROLES[role].socket}`;
      monitors.push(monitorSocket(ctx, socket, (event) => {
        if (config.debug) {
          socketLog.info("{socket} {endpoint}: {event} ({value})", {
            channel,
            socket: name,
            endpoint: event.endpoint,
            event: event.name,
            value: event.value,
          });
        }
        hooks.onSocketEvent?.(channel, role, event);
      }));
    }
    for (const endpoint of config[role]) {
      try {
        if (endpoint.mode === "bind") socket.bind(endpoint.address);
        else socket.connect(endpoint.address);
      } catch (error) {
        const why = error instanceof ZmqError ? explain(error) : String(error);
        throw new StartupError(`${describe(role, endpoint)}: cannot ${endpoint.mode}: ${why}`);
      }
      const resolved = endpoint.mode === "bind" ? socket.getString(ZMQ_LAST_ENDPOINT) : endpoint.address;
      endpoints[role].push(resolved);
      if (endpoint.ipcPath && endpoint.mode === "bind") {
        const file = ownSocketFile(endpoint.ipcPath);
        if (file) owned.push(file);
      }
      log().info("{socket} {action} {endpoint}", {
        channel,
        socket: ROLES[role].socket,
        action: endpoint.mode === "bind" ? "bound" : "connecting",
        endpoint: resolved,
      });
    }
    return socket;
  };

  const channels: Channel[] = [];
  let stopping = false;
  const taps: Tap[] = [];

  const release = async () => {
    for (const tap of taps) tap.stop();
    await Promise.all(channels.map((c) => c.forwarder.stop()));
    ctx.shutdown(); // ends every wait: stuck proxies, monitors, debug receivers
    await Promise.all([
      ...channels.map((c) => c.forwarder.done),
      ...monitors.map((m) => m.done),
      ...taps.map((t) => t.done),
    ]);
    await Promise.all(channels.map((c) => c.forwarder.close()));
    for (const socket of sockets) socket.close();
    await ctx.terminate();
    for (const file of owned) removeOwnedFile(file);
  };

  try {
    const xsub = open("main", "bind", ZMQ_XSUB);
    const xpub = open("main", "publish", ZMQ_XPUB);
    channels.push({ name: "main", forwarder: Forwarder.start(ctx, xsub, xpub) });
    log().info("Forwarding XSUB -> XPUB (ZeroMQ {zmqVersion})", { zmqVersion: zmqVersion() });
    if (config.listen.length > 0) {
      const sub = open("inbound", "listen", ZMQ_SUB);
      const push = open("inbound", "push", ZMQ_PUSH);
      channels.push({ name: "inbound", forwarder: Forwarder.start(ctx, sub, push) });
      log().info("Forwarding inbound SUB -> PUSH");
    }
    if (config.debug) {
      const sent = new SentTimes();
      taps.push(startDebugSubscriber(ctx, peerOf(config.publish[0], endpoints.publish[0]), sent));
      if (config.test) {
        taps.push(startTestPublisher(ctx, peerOf(config.bind[0], endpoints.bind[0]), sent));
      }
      if (config.receiverTest) {
        taps.push(...startInboundTest(
          ctx,
          peerOf(config.listen[0], endpoints.listen[0]),
          peerOf(config.push[0], endpoints.push[0]),
        ));
      }
    }
  } catch (error) {
    await release();
    throw error;
  }

  const failure = new Promise<string>((resolve) => {
    for (const { name, forwarder } of channels) {
      forwarder.done.then((rc) => {
        if (!stopping) resolve(`the ${name} channel's proxy ended unexpectedly (rc ${rc})`);
      });
    }
  });

  const health = () =>
    assessHealth({
      stopping,
      channels: channels.map((c) => ({ name: c.name, running: c.forwarder.running })),
      socketFiles: owned,
    });
  let stopped: Promise<void> | undefined;
  return {
    config,
    endpoints,
    channels: channels.map((c) => c.name),
    health,
    get healthy() {
      return health().ok;
    },
    failure,
    async statistics(options = {}) {
      const result: Partial<Record<ChannelName, ProxyStatistics>> = {};
      await Promise.all(channels.map(async ({ name, forwarder }) => {
        if (!forwarder.running) return;
        const stats = await withTimeout(forwarder.statistics(), options.timeoutMs).catch(() => undefined);
        if (stats) result[name] = stats;
      }));
      return result;
    },
    stop() {
      stopping = true;
      stopped ??= release();
      return stopped;
    },
  };
}

/** `promise`, or undefined once `ms` have passed (never, when `ms` is undefined). */
function withTimeout<T>(promise: Promise<T>, ms: number | undefined): Promise<T | undefined> {
  if (ms === undefined) return promise;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<undefined>((resolve) => timer = setTimeout(() => resolve(undefined), ms));
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** How messages name an endpoint: "-b/--bind 'ipc:///tmp/q'". */
function describe(role: Role, endpoint: Endpoint): string {
  return `${ROLES[role].flag} '${endpoint.address}'`;
}

const ENODEV = 19;

/** libzmq's text, plus what it means where the text alone misleads. */
function explain(error: ZmqError): string {
  if (error.code === ENODEV) return `${error.message} (no such interface or local address)`;
  return error.message;
}

function applyOptions(socket: Socket, config: Config, endpoints: readonly Endpoint[]): void {
  socket.setInt(ZMQ_SNDHWM, config.sndhwm);
  socket.setInt(ZMQ_RCVHWM, config.rcvhwm);
  socket.setInt(ZMQ_LINGER, config.linger);
  if (config.tcpKeepalive > 0) {
    socket.setInt(ZMQ_TCP_KEEPALIVE, 1);
    socket.setInt(ZMQ_TCP_KEEPALIVE_IDLE, config.tcpKeepalive);
  }
  if (endpoints.some((e) => e.address.includes("["))) socket.setInt(ZMQ_IPV6, 1);
}

export type { Health, ProxyStatistics };
