/**
 * The adaptor: builds its channels from a `Config` and owns their whole lifecycle.
 *
 *   main     XSUB (-b) ──► XPUB (-p)    messages down, subscriptions up
 *   inbound  SUB  (-l) ──► PUSH (-u)    only when -l or -r is given
 *
 * Each channel is a native `Forwarder` (zmq_proxy_steerable). Around them: the ipc guard
 * (never take a live socket file; socket files born mode 0000, then given --ipc-mode/-group)
 * and its watch (say so when a socket file disappears), CURVE on the sockets that face the
 * network (XPUB, inbound SUB) with the ZAP handler that admits listed clients, socket monitors
 * (always on: failed handshakes and disconnects are logged as warnings), the protective socket
 * options (frame size limit, handshake timeout, heartbeats, TCP user timeout, backlog), and the
 * debug taps of `-d/-t/-r`. `startAdaptor` either returns a running handle or throws with
 * nothing left open.
 */

import { type AuthCounts, AuthTracker, handshakeFailure } from "./auth.ts";
import { type Config, type Endpoint, peerOf, type Role, ROLES } from "./config.ts";
import {
  type PeerEndpoint,
  SentTimes,
  startDebugSubscriber,
  startInboundTest,
  startTestPublisher,
  type Tap,
} from "./debug.ts";
import { CURVE_ROLES, loadSecurity, reportClients, warnAboutExposure } from "./curve_setup.ts";
import { Forwarder, type ProxyStatistics } from "./engine.ts";
import { StartupError } from "./errors.ts";
import {
  bindProtected,
  checkIpcPath,
  type OwnedSocketFile,
  ownSocketFile,
  removeOwnedFile,
  type SocketFileWatch,
  watchSocketFiles,
} from "./ipc.ts";
import { assessHealth, type Health } from "./health.ts";
import { gatewayAccessProblem } from "./gateway_access.ts"; // issue #14 (gateway side)
import { type MallocTrim, startMallocTrim } from "./libc.ts";
import { literal, log } from "./log.ts";
import { applyOptions, describe, explain } from "./socket_options.ts";
import { type Monitor, monitorSocket, type SocketEvent } from "./monitor.ts";
import { PeerEventLog } from "./peer_events.ts";
import { type AuthEvent, ZapHandler } from "./zap.ts";
import {
  Context,
  type CurveKeyPair,
  curveKeypair,
  type Socket,
  ZMQ_LAST_ENDPOINT,
  ZMQ_PUSH,
  ZMQ_SUB,
  ZMQ_SUBSCRIBE,
  ZMQ_XPUB,
  ZMQ_XSUB,
  ZMQ_ZAP_DOMAIN,
  ZmqError,
  zmqVersion,
} from "./zmq.ts";

/** The two channels an adaptor runs. */
export type ChannelName = "main" | "inbound";

/** Observers of what happens inside a running adaptor (metrics, tests). */
export interface AdaptorHooks {
  /** Every socket event of every channel socket. */
  onSocketEvent?: (channel: ChannelName, role: Role, event: SocketEvent) => void;
  /**
   * Every authentication decision on the CURVE sockets (`--curve-cert`): the ZAP handler's
   * verdicts and the handshakes that failed before it (plaintext clients, wrong server key).
   */
  onAuth?: (event: AuthEvent & { role: Role }) => void;
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
  /** Exact counts of CURVE connections allowed and denied since start (0/0 without CURVE). */
  readonly auth: AuthCounts;
  /**
   * Rereads the `--curve-clients` directory (SIGHUP): new certificates admit their clients from
   * the next connection on, removed ones no longer do. Returns false when there is none.
   */
  reloadClients(): boolean;
  /** Stops forwarding, closes everything within the linger, removes our ipc files. Idempotent. */
  stop(): Promise<void>;
}

interface Channel {
  readonly name: ChannelName;
  readonly forwarder: Forwarder;
}

/** Opens, binds and starts everything `config` asks for. Throws StartupError/UsageError. */
export async function startAdaptor(config: Config, hooks: AdaptorHooks = {}): Promise<AdaptorHandle> {
  // Bad certificates and groups are usage errors: refuse before touching anything.
  const { cert, clients, gid } = loadSecurity(config);
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
  const socketLog = log("socket");
  const peerEvents = new PeerEventLog({ limits: config, logger: socketLog });
  const auth = new AuthTracker(hooks.onAuth);
  // The debug taps are CURVE clients of our own sockets, with a key made for this run.
  const tapKeys: CurveKeyPair | undefined = cert ? curveKeypair() : undefined;
  let zap: ZapHandler | undefined;
  let warnedUmask = false;

  const bindEndpoint = (socket: Socket, role: Role, endpoint: Endpoint): void => {
    const path = endpoint.ipcPath;
    if (!path) return socket.bind(endpoint.address);
    const how = bindProtected(
      () => {
        socket.bind(endpoint.address);
        const file = ownSocketFile(path);
        if (file) owned.push(file);
      },
      path,
      { mode: config.ipcMode, gid },
      describe(role, endpoint),
    );
    // --- issue #14 (gateway side): warn once per socket file when nginx workers could not connect.
    const gatewayFacing = role === "bind" || role === "push"; // the files nginx's workers connect to
    const problem = gatewayFacing
      ? gatewayAccessProblem(path, { ipcGroupGiven: gid !== undefined })
      : undefined;
    if (problem) log().warn(literal(problem));
    // --- end issue #14
    if (how === "chmod-after-bind" && !warnedUmask) {
      warnedUmask = true;
      log().warn("libc's umask is out of reach: socket files have the umask's mode until chmod");
    }
  };

  const open = (channel: ChannelName, role: Role, type: number): Socket => {
    const socket = ctx.socket(type);
    sockets.push(socket);
    applyOptions(socket, config, config[role]);
    if (type === ZMQ_SUB) socket.setBytes(ZMQ_SUBSCRIBE, "");
    const name = `${ROLES[role].socket}`;
    const curveServer = cert !== undefined && CURVE_ROLES.includes(role);
    if (curveServer) {
      // Enforce: should the ZAP handler ever be gone, clients are refused, not waved through.
      socket.curveServer(cert.secretKey, zap !== undefined);
      // libzmq asks the ZAP handler only for sockets with a domain; it tells us which socket.
      if (zap) socket.setBytes(ZMQ_ZAP_DOMAIN, role);
    }
    const dials = new Set(config[role].filter((e) => e.mode === "connect").map((e) => e.address));
    // Always: without -d the peer event log still warns about failed handshakes and disconnects.
    monitors.push(monitorSocket(ctx, socket, (event) => {
      if (curveServer) {
        const denial = handshakeFailure(event, role);
        if (denial) auth.record(denial, role, name);
      }
      if (config.debug) {
        // Events of an endpoint this socket dials are told by the address it dials (their
        // local address is an ephemeral port, or nothing before the connection exists).
        const dialled = dials.has(event.remote);
        const where = dialled ? event.remote : event.endpoint || event.remote;
        const peer = dialled
          ? (event.endpoint ? ` via ${event.endpoint}` : "")
          : (/:\/\/./.test(event.remote) ? ` from ${event.remote}` : "");
        socketLog.info("{socket} {endpoint}: {event} ({value}){peer}", {
          channel,
          socket: name,
          endpoint: where,
          event: event.name,
          value: event.value,
          remote: event.remote,
          peer,
        });
      } else {
        // On CURVE sockets the auth log already tells failed handshakes, as denials.
        peerEvents.report(name, event, { handshakeLogged: curveServer });
      }
      hooks.onSocketEvent?.(channel, role, event);
    }));
    for (const endpoint of config[role]) {
      try {
        if (endpoint.mode === "bind") bindEndpoint(socket, role, endpoint);
        else socket.connect(endpoint.address);
      } catch (error) {
        if (error instanceof StartupError) throw error;
        const why = error instanceof ZmqError ? explain(error) : String(error);
        throw new StartupError(`${describe(role, endpoint)}: cannot ${endpoint.mode}: ${why}`);
      }
      const resolved = endpoint.mode === "bind" ? socket.getString(ZMQ_LAST_ENDPOINT) : endpoint.address;
      endpoints[role].push(resolved);
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
  const fileWatches: SocketFileWatch[] = [];
  const trims: MallocTrim[] = [];

  const release = async () => {
    await Promise.all([...fileWatches, ...trims].map((x) => x.stop()));
    peerEvents.close(); // closing our own sockets is no news
    for (const tap of taps) tap.stop();
    await Promise.all(channels.map((c) => c.forwarder.stop()));
    await zap?.stop();
    ctx.shutdown(); // ends every wait: stuck proxies, monitors, debug receivers
    await Promise.all([
      ...channels.map((c) => c.forwarder.done),
      ...monitors.map((m) => m.done),
      ...taps.map((t) => t.done),
    ]);
    await Promise.all(channels.map((c) => c.forwarder.close()));
    for (const socket of sockets) socket.close();
    await ctx.terminate();
    for (const file of owned) {
      removeOwnedFile(file, (why) => {
        log().warn(
          literal(`cannot remove socket file ${file.path} (${why}); the next start will bind over it`),
        );
      });
    }
  };

  try {
    if (clients) {
      // Before any socket binds: no client may reach a CURVE socket before its judge is up.
      zap = ZapHandler.start(ctx, {
        clients,
        trusted: new Map([[tapKeys!.publicKey, "the adaptor's own debug tap"]]),
        onDecision: (event) => {
          const role = (event.domain in ROLES ? event.domain : "publish") as Role;
          auth.record(event, role, ROLES[role].socket);
        },
      });
      reportClients(clients);
    }
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
    warnAboutExposure(config, cert, clients);
    if (config.debug) {
      const sent = new SentTimes();
      const curve = cert && tapKeys ? { serverKey: cert.publicKey, ...tapKeys } : undefined;
      const asClient = (peer: PeerEndpoint): PeerEndpoint => (curve ? { ...peer, curve } : peer);
      taps.push(startDebugSubscriber(ctx, asClient(peerOf(config.publish[0], endpoints.publish[0])), sent));
      if (config.test) {
        taps.push(startTestPublisher(ctx, peerOf(config.bind[0], endpoints.bind[0]), sent));
      }
      if (config.receiverTest) {
        taps.push(...startInboundTest(
          ctx,
          asClient(peerOf(config.listen[0], endpoints.listen[0])),
          peerOf(config.push[0], endpoints.push[0]),
        ));
      }
    }
  } catch (error) {
    await release();
    throw error;
  }
  // Queues freed after a burst (a slow subscriber at --sndhwm) go back to the system.
  trims.push(startMallocTrim());
  fileWatches.push(watchSocketFiles(owned, (_file, state, text) => {
    if (state === "ok") log().info(literal(text));
    else log().warn(literal(text));
  }));

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
    get auth() {
      return auth.counts;
    },
    reloadClients() {
      if (!zap || stopping) return false;
      zap.reload();
      return true;
    },
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
      stopped ??= logTotals(channels).then(release);
      return stopped;
    },
  };
}

/**
 * Logs each channel's counters as the proxy keeps them, once, at stop: what came in from
 * publishers and what went out. libzmq does not count what an XPUB drops for a subscriber
 * past its high-water mark, so "out" is what was handed to the subscribers' queues.
 */
async function logTotals(channels: readonly Channel[]): Promise<void> {
  // In parallel, 300 ms at most: a proxy blocked on a full PUSH answers nothing.
  const all = await Promise.all(channels.map(async ({ name, forwarder }) => {
    if (!forwarder.running) return undefined;
    const stats = await withTimeout(forwarder.statistics(), 300).catch(() => undefined);
    return stats ? describeTotals(name, stats) : undefined;
  }));
  for (const line of all) if (line) log().info(literal(line));
}

/** e.g. "main channel totals: 120 frames (5400 bytes) in, 120 out; subscriptions 3 in, 3 out upstream". */
export function describeTotals(name: ChannelName, stats: ProxyStatistics): string {
  const { frontend, backend } = stats;
  const main = name === "main";
  return `${name} channel totals: ${frontend.messagesIn} frames (${frontend.bytesIn} bytes) in, ` +
    `${backend.messagesOut} out` +
    (main
      ? ` to subscribers' queues; subscriptions ${backend.messagesIn} in, ${frontend.messagesOut} out upstream`
      : "");
}

/** `promise`, or undefined once `ms` have passed (never, when `ms` is undefined). */
function withTimeout<T>(promise: Promise<T>, ms: number | undefined): Promise<T | undefined> {
  if (ms === undefined) return promise;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<undefined>((resolve) => timer = setTimeout(() => resolve(undefined), ms));
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

export type { Health, ProxyStatistics };
