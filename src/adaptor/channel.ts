/**
 * A channel (CZMQ: a zproxy actor): two sockets, their options and monitors, and the native
 * proxy between them, as one unit that owns its parts.
 *
 *   main     XSUB (-b) ──► XPUB (-p)    messages down, subscriptions up
 *   inbound  SUB  (-l) ──► PUSH (-u)    only when -l or -r is given
 *
 * `openChannel` opens the frontend, then the backend (each: options, CURVE server where the
 * role faces the network, a monitor started before the first bind/connect, then every endpoint),
 * then starts the proxy, and registers the proxy's stop on the adaptor's disposal stack the
 * moment it runs. The sockets and monitor readers belong to the context, which closes them at
 * its termination, so nothing a channel opened can outlive the adaptor even if opening fails
 * half-way. `done` settles if the proxy or a monitor ends by itself.
 */

import type { Config } from "../config/config.ts";
import { type Endpoint, type Role, ROLES } from "../config/endpoint.ts";
import type { CurveSetting } from "../security/curve.ts";
import { Forwarder } from "./proxy.ts";
import { StartupError } from "../errors.ts";
import { gatewayAccessProblem } from "../ipc/gateway_access.ts";
import type { IpcGuard } from "../ipc/ipc_guard.ts";
import type { BindProtection } from "../ipc/socket_file.ts";
import { literal, log } from "../ops/log.ts";
import type { InheritedListener } from "../ops/socket_activation.ts";
import { monitorSocket, type SocketEvent } from "../zmq/monitor.ts";
import { applyOptions, describe, explain } from "../zmq/socket_options.ts";
import { ZmqError } from "../zmq/binding.ts";
import {
  ZMQ_CURVE_SERVER,
  ZMQ_LAST_ENDPOINT,
  ZMQ_PUB,
  ZMQ_PUSH,
  ZMQ_SUB,
  ZMQ_SUBSCRIBE,
  ZMQ_USE_FD,
  ZMQ_XPUB,
  ZMQ_XSUB,
  ZMQ_ZAP_DOMAIN,
} from "../zmq/constants.ts";
import { type Context, type Socket } from "../zmq/socket.ts";

/** The two channels an adaptor runs. */
export type ChannelName = "main" | "inbound";

/** Which roles a channel connects, and with which socket types. */
export interface ChannelSpec {
  readonly name: ChannelName;
  readonly frontend: { readonly role: Role; readonly type: number };
  readonly backend: { readonly role: Role; readonly type: number };
}

/** The main channel: gateway workers' events down, tracking services' subscriptions up. */
export const MAIN: ChannelSpec = {
  name: "main",
  frontend: { role: "bind", type: ZMQ_XSUB },
  backend: { role: "publish", type: ZMQ_XPUB },
};

/**
 * The main channel with `--subscriptions local`: a PUB, which keeps its subscribers'
 * subscriptions (and any other frame they send) to itself; the XSUB subscribes the workers to
 * everything once (`openChannel`), and libzmq replays that to every worker that connects.
 */
export const MAIN_LOCAL: ChannelSpec = {
  name: "main",
  frontend: { role: "bind", type: ZMQ_XSUB },
  backend: { role: "publish", type: ZMQ_PUB },
};

/** The inbound channel: a remote publisher's messages to the gateway's PULL workers. */
export const INBOUND: ChannelSpec = {
  name: "inbound",
  frontend: { role: "listen", type: ZMQ_SUB },
  backend: { role: "push", type: ZMQ_PUSH },
};

/** What a channel needs from the adaptor that builds it. */
export interface ChannelDeps {
  readonly ctx: Context;
  readonly config: Config;
  readonly guard: IpcGuard;
  /** The group of the ipc socket files (`--ipc-group`). */
  readonly gid?: number;
  /** The mechanism of each endpoint (`curveFor`): CURVE server, CURVE client, or plaintext. */
  readonly curve: (role: Role, endpoint: Endpoint) => CurveSetting;
  /** Where the events of the `role` socket go (see `routeSocketEvents`). */
  readonly route: (channel: ChannelName, role: Role, curveServer: boolean) => (event: SocketEvent) => void;
  /** A monitor callback threw: reported, and the monitor goes on. */
  readonly onRouteError: (channel: ChannelName, role: Role, error: unknown) => void;
  /** The proxy was interrupted by a signal and restarted. */
  readonly onRestart: (channel: ChannelName, count: number) => void;
  /** The listen backlog of bound tcp endpoints (`listenBacklog`). */
  readonly backlog: number;
  /** Said once, when socket files get their mode by chmod after bind (no umask here). */
  readonly onChmodAfterBind: () => void;
  /**
   * What the channel's proxy waits for before its first run (the main one: `SubscriberWait`),
   * and whom it tells that a subscription came in meanwhile.
   */
  readonly startGate?: (channel: ChannelName) => { ready: Promise<unknown>; subscribed(): void } | undefined;
  /** The listening socket systemd passed for a bound endpoint (socket activation), if any. */
  readonly inherited?: (endpoint: Endpoint) => InheritedListener | undefined;
}

/** A running channel. */
export interface Channel {
  readonly name: ChannelName;
  readonly forwarder: Forwarder;
  /** The addresses each of its roles bound or connected (wildcard ports resolved). */
  readonly endpoints: ReadonlyMap<Role, readonly string[]>;
  /** Settles with what ended, if the proxy or a monitor ends by itself (never while running well). */
  readonly done: Promise<string>;
  /**
   * Connects `endpoint` of `role` again with the mechanism `curve` (a server key reread on
   * SIGHUP), with the proxy paused meanwhile: libzmq took the old key when it connected. Rejects
   * when the proxy could not be paused within `timeoutMs` (blocked in a send); the endpoint then
   * stays as it was.
   */
  reconnect(role: Role, endpoint: Endpoint, curve: CurveSetting, timeoutMs?: number): Promise<void>;
  /**
   * The distinct topics the upstream socket (an XSUB) has subscribed its publishers to now
   * (`ZMQ_TOPICS_COUNT`): the live subscriptions every gateway worker keeps. Undefined for the
   * inbound channel, and once the channel is stopping. (Not the XPUB's own count: libzmq 4.3.5
   * does not lower it when a subscriber leaves; `tests/libzmq_quirk_test.ts`.)
   */
  topics(): number | undefined;
  /**
   * Stops taking messages from upstream, with the proxy paused for a moment: unbinds the
   * upstream socket's bound endpoints (their connections close) and disconnects its connected
   * ones. What the publishers sent before stays queued in the socket and is forwarded as the
   * proxy goes on; what they publish from now on they queue for the next adaptor. For a stop.
   */
  detachUpstream(timeoutMs?: number): Promise<void>;
}

/**
 * Opens `spec`'s sockets, binds or connects them, starts the proxy, and defers its stop on
 * `stack`. Throws `StartupError` naming the flag and endpoint that could not be bound.
 */
export function openChannel(stack: AsyncDisposableStack, deps: ChannelDeps, spec: ChannelSpec): Channel {
  const endpoints = new Map<Role, string[]>();
  const ended: Promise<string>[] = [];
  const open = ({ role, type }: ChannelSpec["frontend"]): Socket => {
    const { ctx, config } = deps;
    const socket = ctx.socket(type);
    applyOptions(socket, config, config[role], { backlog: deps.backlog });
    if (type === ZMQ_SUB) socket.setBytes(ZMQ_SUBSCRIBE, "");
    const name = ROLES[role].socket;
    const curveServer = config[role].some((e) => deps.curve(role, e)?.kind === "server");
    const monitor = monitorSocket(
      ctx,
      socket,
      deps.route(spec.name, role, curveServer),
      (error) => deps.onRouteError(spec.name, role, error),
    );
    ended.push(monitor.done.then((why) => `the ${name}'s monitor ended (${why})`));
    const resolved: string[] = [];
    endpoints.set(role, resolved);
    const order = config[role].map((endpoint, i) => ({ endpoint, i }))
      .sort((a, b) => attachOrder(deps.curve(role, a.endpoint)) - attachOrder(deps.curve(role, b.endpoint)));
    for (const { endpoint, i } of order) {
      attach(deps, socket, role, endpoint);
      const address = endpoint.mode === "bind" ? socket.getString(ZMQ_LAST_ENDPOINT) : endpoint.address;
      resolved[i] = address; // in the order given, whatever the order attached
      log().info("{socket} {action} {endpoint}", {
        channel: spec.name,
        socket: name,
        action: endpoint.mode === "connect"
          ? "connecting"
          : deps.inherited?.(endpoint)
          ? "bound on the socket systemd passed at"
          : "bound",
        endpoint: address,
      });
    }
    return socket;
  };
  const frontend = open(spec.frontend);
  const backend = open(spec.backend);
  // A PUB backend passes nothing upstream: the workers get one subscription, to everything.
  if (spec.frontend.type === ZMQ_XSUB && spec.backend.type === ZMQ_PUB) frontend.trySend(new Uint8Array([1]));
  const socketOf = (role: Role) => role === spec.frontend.role ? frontend : backend;
  const gate = deps.startGate?.(spec.name);
  const forwarder = Forwarder.start(deps.ctx, frontend, backend, {
    onRestart: (count) => deps.onRestart(spec.name, count),
    startWhen: gate?.ready,
    onHeldPass: gate ? () => gate.subscribed() : undefined,
  });
  stack.defer(async () => void await forwarder.stop());
  ended.push(forwarder.done.then((rc) => `the ${spec.name} channel's proxy ended unexpectedly (rc ${rc})`));
  return {
    name: spec.name,
    forwarder,
    endpoints,
    done: Promise.race(ended),
    topics: () => spec.frontend.type === ZMQ_XSUB && forwarder.running ? frontend.topics() : undefined,
    detachUpstream: (timeoutMs) =>
      forwarder.pause(() => {
        const role = spec.frontend.role;
        const resolved = endpoints.get(role) ?? [];
        deps.config[role].forEach((endpoint, i) => {
          try {
            if (endpoint.mode === "connect") frontend.disconnect(endpoint.address);
            else frontend.unbind(resolved[i]);
          } catch { /* already gone: nothing more comes from it */ }
        });
      }, { timeoutMs }),
    reconnect: (role, endpoint, curve, timeoutMs) =>
      forwarder.pause(() => {
        const socket = socketOf(role);
        socket.disconnect(endpoint.address);
        secure(socket, role, curve);
        socket.connect(endpoint.address);
      }, { timeoutMs }),
  };
}

/**
 * Gives the socket the mechanism of `endpoint`. libzmq copies a socket's options into each
 * listener and connection when it binds or connects, so one socket can be a CURVE server on its
 * tcp endpoints, a CURVE client of each server it connects to, and plaintext on its ipc one.
 */
function secure(socket: Socket, role: Role, curve: CurveSetting): void {
  if (curve?.kind === "server") {
    // Enforce: should the ZAP handler ever be gone, clients are refused, not waved through.
    socket.curveServer(curve.secretKey, curve.zap);
    // libzmq asks the ZAP handler only for sockets with a domain; it tells us which socket.
    if (curve.zap) socket.setBytes(ZMQ_ZAP_DOMAIN, role);
    return;
  }
  if (curve?.kind === "client") socket.curveClient(curve);
  else socket.setInt(ZMQ_CURVE_SERVER, 0); // back to the NULL mechanism (plaintext)
}

/**
 * The order a socket's endpoints are attached in: plaintext, then CURVE client, then CURVE
 * server ones. A ZAP domain, once set (server endpoints), cannot be unset, and libzmq asks ZAP
 * about NULL connections too where one is set: the ipc endpoint must come before it.
 */
/**
 * Binds `address` on the listening descriptor `fd` (libzmq's `ZMQ_USE_FD`: no socket, bind or
 * listen of its own, and no unlink of the file before or after), for this bind only.
 */
function bindOn(socket: Socket, address: string, fd: number): void {
  socket.setInt(ZMQ_USE_FD, fd);
  try {
    socket.bind(address);
  } finally {
    socket.setInt(ZMQ_USE_FD, -1);
  }
}

function attachOrder(curve: CurveSetting): number {
  return curve === undefined ? 0 : curve.kind === "client" ? 1 : 2;
}

function attach(deps: ChannelDeps, socket: Socket, role: Role, endpoint: Endpoint): void {
  const curve = deps.curve(role, endpoint);
  if (curve || deps.config[role].some((e) => deps.curve(role, e))) secure(socket, role, curve);
  try {
    if (endpoint.mode === "connect") return socket.connect(endpoint.address);
    const inherited = deps.inherited?.(endpoint);
    const path = endpoint.ipcPath;
    if (inherited) {
      bindOn(socket, endpoint.address, inherited.fd); // the unit set its mode and owner
      if (path) deps.guard.adopt(path);
    } else if (!path) return socket.bind(endpoint.address);
    else {
      const how: BindProtection = deps.guard.bind(
        () => socket.bind(endpoint.address),
        path,
        { mode: deps.config.ipcMode, gid: deps.gid },
        describe(role, endpoint),
      );
      if (how === "chmod-after-bind") deps.onChmodAfterBind();
    }
    if (!path) return;
    // The files nginx's workers connect to: say so once when they could not (another user).
    if (role === "bind" || role === "push") {
      const problem = gatewayAccessProblem(path, { ipcGroupGiven: deps.gid !== undefined });
      if (problem) log().warn(literal(problem));
    }
  } catch (error) {
    if (error instanceof StartupError) throw error;
    const why = error instanceof ZmqError ? explain(error) : String(error);
    throw new StartupError(`${describe(role, endpoint)}: cannot ${endpoint.mode}: ${why}`);
  }
}
