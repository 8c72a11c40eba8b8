/**
 * ZeroMQ peers for tests, in the test process: publishers (as nginx workers would be),
 * subscribers (as tracking services), PULL receivers. They use the same FFI binding as the
 * adaptor, but their own context and sockets, and talk to the adaptor over real ipc/tcp.
 *
 * Publishers never drop silently: they set ZMQ_XPUB_NODROP, so a full pipe makes `trySend`
 * fail and the publisher waits, which makes exact counting possible.
 */

import {
  ZMQ_LINGER,
  ZMQ_PUB,
  ZMQ_PULL,
  ZMQ_RCVHWM,
  ZMQ_RECONNECT_IVL,
  ZMQ_SNDHWM,
  ZMQ_SUB,
  ZMQ_SUBSCRIBE,
  ZMQ_XPUB,
} from "../src/zmq/constants.ts";
import { Context, type Frames, type Socket } from "../src/zmq/socket.ts";
import { sleep, until } from "./net.ts";

const ZMQ_XPUB_NODROP = 69;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** CURVE client keys of a peer (all Z85): the server's public key and the peer's own pair. */
export interface CurveClient {
  readonly serverKey: string;
  readonly publicKey: string;
  readonly secretKey: string;
}

/** Options of a peer socket. */
export interface PeerOptions {
  /** Connect as a CURVE client (ZMQ_CURVE_SERVERKEY, _PUBLICKEY, _SECRETKEY) — set before connect. */
  readonly curve?: CurveClient;
  /** ZMQ_RECONNECT_IVL in ms (libzmq's default 100): a peer that comes back later after a restart. */
  readonly reconnectIvl?: number;
}

/** An opener of `ctx`'s sockets with linger 0, as every test peer has: `open(ZMQ_XSUB)`. */
export function lingerless(ctx: Context): (type: number) => Socket {
  return (type) => {
    const socket = ctx.socket(type);
    socket.setInt(ZMQ_LINGER, 0);
    return socket;
  };
}

/** The topic of synchronisation messages; every test subscriber takes it. */
export const SYNC = "sync|";

/** Owns a context and every peer made from it; `close()` ends them all. */
export class Peers {
  readonly ctx = new Context();
  #sockets: Socket[] = [];
  #loops: Promise<void>[] = [];

  socket(type: number): Socket {
    const socket = this.ctx.socket(type);
    socket.setInt(ZMQ_LINGER, 0);
    this.#sockets.push(socket);
    return socket;
  }

  /** A PUB connecting to (or binding) `address` that waits instead of dropping. */
  publisher(address: string, bind = false, options: PeerOptions = {}): Publisher {
    const socket = this.socket(ZMQ_PUB);
    socket.setInt(ZMQ_XPUB_NODROP, 1);
    socket.setInt(ZMQ_SNDHWM, 1000);
    if (options.curve) socket.curveClient(options.curve);
    if (bind) socket.bind(address);
    else socket.connect(address);
    return new Publisher(socket);
  }

  /** A SUB connecting to `address`, subscribed to `topics` and to sync messages. */
  subscriber(address: string, topics: string[] = [""], options: PeerOptions = {}): Receiver {
    const socket = this.socket(ZMQ_SUB);
    socket.setInt(ZMQ_RCVHWM, 0);
    if (options.curve) socket.curveClient(options.curve);
    if (options.reconnectIvl !== undefined) socket.setInt(ZMQ_RECONNECT_IVL, options.reconnectIvl);
    for (const topic of [...topics, SYNC]) socket.setBytes(ZMQ_SUBSCRIBE, topic);
    socket.connect(address);
    return this.#receiver(socket);
  }

  /** A PULL connecting (or binding) to `address`. */
  puller(address: string, bind = false): Receiver {
    const socket = this.socket(ZMQ_PULL);
    socket.setInt(ZMQ_RCVHWM, 0);
    if (bind) socket.bind(address);
    else socket.connect(address);
    return this.#receiver(socket);
  }

  /**
   * An XPUB connecting to `address` (the adaptor's XSUB), in a gateway worker's place: it
   * records the subscriptions that reach the publishers.
   */
  upstream(address: string): Upstream {
    const socket = this.socket(ZMQ_XPUB);
    socket.connect(address);
    const upstream = new Upstream();
    this.#loop(socket, (frames) => upstream.take(frames));
    return upstream;
  }

  #receiver(socket: Socket): Receiver {
    const receiver = new Receiver();
    this.#loop(socket, (frames) => receiver.take(frames));
    return receiver;
  }

  #loop(socket: Socket, take: (frames: Frames) => void): void {
    this.#loops.push((async () => {
      try {
        for (;;) {
          const first = await socket.receive();
          if (!first) return;
          take(first);
          let more: Frames | undefined;
          while ((more = socket.tryReceive())) take(more);
        }
      } catch {
        // ETERM: the context was shut down between two receives
      }
    })());
  }

  /** Shuts the context down, waits for receive loops, closes every socket. */
  async close(): Promise<void> {
    this.ctx.shutdown();
    await Promise.all(this.#loops);
    for (const socket of this.#sockets) socket.close();
    await this.ctx.terminate();
  }
}

/** A publishing socket that never loses a message to its own high-water mark. */
export class Publisher {
  constructor(readonly socket: Socket) {}

  /** Sends one message, waiting while the pipe is full. */
  async send(frames: Frames | string): Promise<void> {
    const message = typeof frames === "string" ? [encoder.encode(frames)] : frames;
    while (!this.socket.trySend(message)) await sleep(1);
  }

  /** Sends `count` messages made by `make(i)`, yielding to the event loop every `batch`. */
  async sendAll(count: number, make: (i: number) => Frames | string, batch = 200): Promise<void> {
    for (let i = 0; i < count; i++) {
      await this.send(make(i));
      if (i % batch === batch - 1) await sleep(1);
    }
  }
}

/** Collects what a receiving socket gets: sync messages apart, the rest in order. */
export class Receiver {
  readonly messages: Frames[] = [];
  readonly syncFrom = new Set<string>();
  /** Sync messages received (single frames) and their bytes, for exact traffic counts. */
  readonly sync = { messages: 0, bytes: 0 };

  take(frames: Frames): void {
    const first = decoder.decode(frames[0]);
    if (first.startsWith(SYNC)) {
      this.syncFrom.add(first.slice(SYNC.length));
      this.sync.messages++;
      this.sync.bytes += frames[0].length;
    } else {
      this.messages.push(frames);
    }
  }

  /** The first frame of each message, as text. */
  texts(): string[] {
    return this.messages.map((m) => decoder.decode(m[0]));
  }

  /** Waits until `count` messages have come; throws with what came after `ms`. */
  async expect(count: number, ms = 20_000): Promise<void> {
    await until(() => this.messages.length >= count, `${this.messages.length} of ${count} messages`, ms);
  }
}

/**
 * The subscriptions a publisher has been told about. A (non-verbose) XPUB reports a topic's
 * first subscription and its last unsubscription, so `topics` is the net set upstream.
 */
export class Upstream {
  readonly topics = new Set<string>();
  /** Every subscribe ("+topic") and unsubscribe ("-topic"), in order. */
  readonly log: string[] = [];
  /** Frames that were not subscriptions (a subscriber's `\x02…`, passed upstream by an XPUB). */
  strays = 0;

  take(frames: Frames): void {
    const data = frames[0];
    if (data.length === 0 || data[0] > 1) {
      this.strays++;
      return;
    }
    const topic = decoder.decode(data.subarray(1));
    if (data[0] === 1) this.topics.add(topic);
    else this.topics.delete(topic);
    this.log.push(`${data[0] === 1 ? "+" : "-"}${topic}`);
  }

  /** Waits until `topic` is subscribed upstream (or, with `present` false, no longer is). */
  async expect(topic: string, present = true, ms = 10_000): Promise<void> {
    const what = `${JSON.stringify(topic)} ${present ? "to reach" : "to leave"} the publishers; log: ${
      this.log.slice(-20).join(" ")
    }`;
    await until(() => this.topics.has(topic) === present, what, ms);
  }
}

/**
 * Sends sync messages from every publisher until every receiver has seen one from each: by
 * then every subscription has reached every publisher, and nothing sent later is lost to the
 * slow joiner effect.
 */
export async function syncUp(publishers: Publisher[], receivers: Receiver[], ms = 10_000): Promise<void> {
  const deadline = performance.now() + ms;
  for (;;) {
    const missing = publishers.some((_, i) => receivers.some((r) => !r.syncFrom.has(String(i))));
    if (!missing) return;
    if (performance.now() > deadline) throw new Error("peers did not sync: subscriptions never arrived");
    publishers.forEach((p, i) => p.socket.trySend(`${SYNC}${i}`));
    await sleep(50);
  }
}
