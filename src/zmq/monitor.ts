/**
 * Socket monitoring: libzmq's `zmq_socket_monitor` events of one socket, delivered to a
 * callback. The reader waits in a blocking call on a pool thread, so an idle monitor costs
 * no CPU; it ends when the context is shut down.
 *
 * libzmq sends each event from the I/O thread with a *blocking* send on its monitor PAIR: if
 * the reader falls behind by a full queue (1000 events at the default high-water mark), the
 * I/O thread stops, and so does forwarding. A burst of connections (a scan, a reconnect storm)
 * makes thousands of events; so the reader takes up to `MONITOR_QUEUE` of them, and drains
 * whatever is queued after each wake-up. For the same reason the reader must never stop while
 * the socket lives: a callback that throws is reported to `onError` and the loop goes on; a
 * wait that a signal interrupts goes on (`Socket.receive`); the loop ends only when the context
 * is shut down or the socket closed, and `done` says which.
 */

import { ZMQ_EVENT_ALL, ZMQ_EVENT_BIND_FAILED, ZMQ_LINGER, ZMQ_PAIR, ZMQ_RCVHWM } from "./constants.ts";
import type { Context, Frames, Socket } from "./socket.ts";

const decoder = new TextDecoder();

/** Monitor events (zmq.h, v1 monitor protocol). */
export const EVENT_NAMES: Readonly<Record<number, string>> = {
  0x0001: "connected",
  0x0002: "connect_delayed",
  0x0004: "connect_retried",
  0x0008: "listening",
  0x0010: "bind_failed",
  0x0020: "accepted",
  0x0040: "accept_failed",
  0x0080: "closed",
  0x0100: "close_failed",
  0x0200: "disconnected",
  0x0400: "monitor_stopped",
  0x0800: "handshake_failed_no_detail",
  0x1000: "handshake_succeeded",
  0x2000: "handshake_failed_protocol",
  0x4000: "handshake_failed_auth",
};

/** Protocol errors reported by `handshake_failed_protocol` events (zmq.h). */
export const PROTOCOL_ERRORS: Readonly<Record<number, string>> = {
  0x10000000: "ZMTP protocol error",
  0x10000001: "unexpected command",
  0x10000002: "invalid command sequence",
  0x10000003: "key exchange failed",
  0x10000011: "malformed command",
  0x10000012: "malformed MESSAGE command",
  0x10000013: "malformed HELLO command",
  0x10000014: "malformed INITIATE command",
  0x10000015: "malformed ERROR command",
  0x10000016: "malformed READY command",
  0x10000017: "malformed WELCOME command",
  0x10000018: "invalid metadata",
  0x11000001: "cryptographic error (the client may use a wrong server key)",
  0x11000002: "security mechanism mismatch (the client may not use CURVE)",
  0x20000000: "ZAP error",
  0x20000001: "malformed ZAP reply",
  0x20000002: "bad ZAP request id",
  0x20000003: "bad ZAP version",
  0x20000004: "invalid ZAP status code",
  0x20000005: "malformed ZAP metadata",
  0x30000000: "WebSocket protocol error",
};

/**
 * Every event but `bind_failed`: libzmq sends that one from inside `zmq_bind`, and sending it
 * overwrites the errno that `zmq_bind` fails with (ENODEV came back as EAGAIN). A failed bind
 * is reported by the bind itself.
 */
const EVENTS = ZMQ_EVENT_ALL & ~ZMQ_EVENT_BIND_FAILED;

/** Monitor events queued for the reader before libzmq's I/O thread has to wait for it. */
export const MONITOR_QUEUE = 100_000;

/** One socket event, e.g. `{ name: "accepted", endpoint: "tcp://127.0.0.1:6001", value: 12 }`. */
export interface SocketEvent {
  /** libzmq's event name in lower case: listening, accepted, connected, disconnected, closed… */
  readonly name: string;
  /** The endpoint the event concerns (the local one of a bound socket). */
  readonly endpoint: string;
  /** The peer's address (e.g. `tcp://10.0.0.7:51234`) where libzmq reports it, else "". */
  readonly remote: string;
  /** The event's value: a file descriptor, an errno or a reconnect interval, by event. */
  readonly value: number;
}

let monitorSeq = 0;

/** A running monitor. */
export interface Monitor {
  /**
   * Resolves once the reader has ended and is closed: "shutdown" (the context was shut down),
   * "stopped" (the socket was closed), or "failed: …" (a receive failed otherwise).
   */
  readonly done: Promise<string>;
}

/**
 * Starts monitoring `socket`; call before it binds or connects to see `listening` events.
 * Every event goes to `onEvent`, in order.
 */
export function monitorSocket(
  ctx: Context,
  socket: Socket,
  onEvent: (event: SocketEvent) => void,
  onError: (error: unknown, event: SocketEvent) => void = () => {},
): Monitor {
  const address = `inproc://adaptor-monitor-${++monitorSeq}`;
  const version = socket.monitor(address, EVENTS);
  const reader = ctx.socket(ZMQ_PAIR);
  reader.setInt(ZMQ_LINGER, 0);
  reader.setInt(ZMQ_RCVHWM, MONITOR_QUEUE); // set before connect: inproc takes it then
  reader.connect(address);
  // Returns false when the monitor stopped.
  const deliver = (frames: Frames): boolean => {
    const event = decodeMonitorEvent(frames, version);
    if (event?.name === "monitor_stopped") return false;
    if (event) {
      const e = { name: event.name, endpoint: event.endpoint, value: event.value, remote: event.remote };
      try {
        onEvent(e);
      } catch (error) {
        onError(error, e);
      }
    }
    return true;
  };
  const done = (async () => {
    try {
      for (;;) {
        const frames = await reader.receive();
        if (!frames) return "shutdown";
        if (!deliver(frames)) return "stopped";
        let more: Frames | undefined;
        while ((more = reader.tryReceive())) if (!deliver(more)) return "stopped";
      }
    } catch (error) {
      // ETERM: the context was shut down between two receives
      return ctx.isShutDown ? "shutdown" : `failed: ${(error as Error).message}`;
    } finally {
      reader.close();
    }
  })();
  return { done };
}

/** One decoded monitor event; `remote` is the peer's address where libzmq names it (v2). */
export interface MonitorEvent {
  readonly event: number;
  readonly name: string;
  readonly value: number;
  readonly endpoint: string;
  readonly remote: string;
}

/**
 * Decodes a monitor message: v1 is [event u16 | value u32, endpoint]; v2 is [event u64,
 * count u64, count × value u64, local address, remote address].
 */
export function decodeMonitorEvent(frames: Frames, version: 1 | 2 = 1): MonitorEvent | undefined {
  const view = (f: Uint8Array) => new DataView(f.buffer, f.byteOffset, f.byteLength);
  if (version === 2) {
    if (frames.length < 4 || frames[0].length < 8 || frames[1].length < 8) return undefined;
    const event = Number(view(frames[0]).getBigUint64(0, true));
    const count = Number(view(frames[1]).getBigUint64(0, true));
    if (frames.length < 4 + count) return undefined;
    const value = count > 0 && frames[2].length >= 8 ? Number(view(frames[2]).getBigUint64(0, true)) : 0;
    return {
      event,
      name: EVENT_NAMES[event] ?? `event_${event}`,
      value,
      endpoint: decoder.decode(frames[2 + count]),
      remote: decoder.decode(frames[3 + count]),
    };
  }
  if (frames.length < 2 || frames[0].length < 6) return undefined;
  const event = view(frames[0]).getUint16(0, true);
  const value = view(frames[0]).getUint32(2, true);
  return {
    event,
    name: EVENT_NAMES[event] ?? `event_${event}`,
    value,
    endpoint: decoder.decode(frames[1]),
    remote: "",
  };
}
