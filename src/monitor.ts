/**
 * Socket monitoring: libzmq's `zmq_socket_monitor` events of one socket, delivered to a
 * callback. The reader waits in a blocking call on a pool thread, so an idle monitor costs
 * no CPU; it ends when the context is shut down.
 */

import { type Context, decodeMonitorEvent, type Socket, ZMQ_LINGER, ZMQ_PAIR } from "./zmq.ts";

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

/** A running monitor; `done` resolves after the context is shut down and the reader closed. */
export interface Monitor {
  readonly done: Promise<void>;
}

/**
 * Starts monitoring `socket`; call before it binds or connects to see `listening` events.
 * Every event goes to `onEvent`, in order.
 */
export function monitorSocket(
  ctx: Context,
  socket: Socket,
  onEvent: (event: SocketEvent) => void,
): Monitor {
  const address = `inproc://adaptor-monitor-${++monitorSeq}`;
  const version = socket.monitor(address);
  const reader = ctx.socket(ZMQ_PAIR);
  reader.setInt(ZMQ_LINGER, 0);
  reader.connect(address);
  const done = (async () => {
    for (;;) {
      const frames = await reader.receive();
      if (!frames) break; // context shut down
      const event = decodeMonitorEvent(frames, version);
      if (event?.name === "monitor_stopped") break;
      if (event) {
        onEvent({ name: event.name, endpoint: event.endpoint, value: event.value, remote: event.remote });
      }
    }
    reader.close();
  })();
  return { done };
}
