/**
 * How the adaptor sets up each of its sockets: the options from the `Config` (high-water marks,
 * linger, reconnect back-off, and the protective limits libzmq leaves off by default), and how
 * an endpoint and a libzmq error are named in the one-line errors operators see.
 */

import type { Config } from "../config/config.ts";
import { type Endpoint, type Role, ROLES } from "../config/endpoint.ts";
import { type ZmqError } from "./binding.ts";
import {
  ZMQ_BACKLOG,
  ZMQ_HANDSHAKE_IVL,
  ZMQ_HEARTBEAT_IVL,
  ZMQ_HEARTBEAT_TIMEOUT,
  ZMQ_HEARTBEAT_TTL,
  ZMQ_IPV6,
  ZMQ_LINGER,
  ZMQ_MAXMSGSIZE,
  ZMQ_OUT_BATCH_SIZE,
  ZMQ_PUB,
  ZMQ_RCVHWM,
  ZMQ_RECONNECT_IVL,
  ZMQ_RECONNECT_IVL_MAX,
  ZMQ_SNDHWM,
  ZMQ_TCP_KEEPALIVE,
  ZMQ_TCP_KEEPALIVE_IDLE,
  ZMQ_TCP_MAXRT,
  ZMQ_XPUB,
} from "./constants.ts";
import { type Socket } from "./socket.ts";

/** How messages name an endpoint: "-b/--bind 'ipc:///tmp/q'". */
export function describe(role: Role, endpoint: Endpoint): string {
  return `${ROLES[role].flag} '${endpoint.address}'`;
}

const ENODEV = 19;

/** libzmq's text, plus what it means where the text alone misleads. */
export function explain(error: ZmqError): string {
  if (error.code === ENODEV) return `${error.message} (no such interface or local address)`;
  return error.message;
}

/**
 * Pending connections the kernel queues for a bound endpoint. libzmq's 100 overflows when a
 * hundred peers reconnect at once (every subscriber after a network blip, every worker after a
 * reload): the overflow costs each one a 1 s SYN retransmit. The kernel caps it at somaxconn.
 */
const LISTEN_BACKLOG = 1024;

/**
 * The ZMQ_MAXMSGSIZE of a socket of `type` (-1: no limit). The XPUB (or PUB, with
 * `--subscriptions local`) receives nothing but
 * subscriptions, which every publisher keeps (docs/reliability.md), so it
 * gets `--max-subscription-size`; the others `--max-message-size`.
 */
export function maxFrameSize(type: number, config: Config): number {
  const limit = (type === ZMQ_XPUB || type === ZMQ_PUB) && config.maxSubscriptionSize > 0
    ? config.maxSubscriptionSize
    : config.maxMessageSize;
  return limit === 0 ? -1 : limit;
}

/** Sets every option the adaptor gives its sockets; call before bind or connect. */
export function applyOptions(
  socket: Socket,
  config: Config,
  endpoints: readonly Endpoint[],
  options: { backlog?: number } = {},
): void {
  socket.setInt(ZMQ_SNDHWM, config.sndhwm);
  socket.setInt(ZMQ_RCVHWM, config.rcvhwm);
  socket.setInt(ZMQ_LINGER, config.linger);
  socket.setInt(ZMQ_RECONNECT_IVL, config.reconnectIvl);
  socket.setInt(ZMQ_RECONNECT_IVL_MAX, config.reconnectIvlMax);
  // libzmq's defaults suit a trusted LAN; these suit a daemon that must outlive its peers.
  socket.setInt64(ZMQ_MAXMSGSIZE, maxFrameSize(socket.type, config));
  socket.setInt(ZMQ_HANDSHAKE_IVL, config.handshakeTimeout);
  socket.setInt(ZMQ_BACKLOG, options.backlog ?? LISTEN_BACKLOG);
  socket.setInt(ZMQ_TCP_MAXRT, config.tcpUserTimeout);
  // Fewer, larger writes: what the fan-out to many subscribers gains most from.
  socket.setInt(ZMQ_OUT_BATCH_SIZE, config.outBatchSize);
  if (config.heartbeatInterval > 0) {
    socket.setInt(ZMQ_HEARTBEAT_IVL, config.heartbeatInterval);
    socket.setInt(ZMQ_HEARTBEAT_TIMEOUT, config.heartbeatTimeout);
    socket.setInt(ZMQ_HEARTBEAT_TTL, config.heartbeatTimeout);
  }
  if (config.tcpKeepalive > 0) {
    socket.setInt(ZMQ_TCP_KEEPALIVE, 1);
    socket.setInt(ZMQ_TCP_KEEPALIVE_IDLE, config.tcpKeepalive);
  }
  if (endpoints.some((e) => e.address.includes("["))) socket.setInt(ZMQ_IPV6, 1);
}
