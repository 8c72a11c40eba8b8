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

import {
  type Context,
  decodeMonitorEvent,
  type Frames,
  type Socket,
  ZMQ_EVENT_ALL,
  ZMQ_EVENT_BIND_FAILED,
  ZMQ_LINGER,
  ZMQ_PAIR,
  ZMQ_RCVHWM,
} from "./zmq.ts";

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
