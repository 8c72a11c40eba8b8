/**
 * How many topics the gateway's workers are subscribed to: the live subscriptions of the main
 * channel, as the `adaptor_topics` gauge shows them (a topic flood, or a leak, shows there).
 *
 * libzmq's own count (`ZMQ_TOPICS_COUNT`) may be asked only by the thread that owns the socket,
 * which is the proxy's. So the XSUB gets one more peer, in its own process: an inproc XPUB in
 * manual mode, which stores nothing and hands every subscription the XSUB sends upstream to this
 * loop. The XPUB facing the subscribers passes a topic upstream on its first subscriber and its
 * cancel on its last, so +1 and -1 are exact. Nothing per message: subscriptions only.
 */

import { type Context, type Frames, type Socket, ZMQ_LINGER, ZMQ_RCVHWM, ZMQ_XPUB } from "./zmq.ts";

const ZMQ_XPUB_MANUAL = 71;

let seq = 0;

/** A running count of the topics an XSUB passes upstream. */
export interface TopicCount {
  /** Topics subscribed upstream now. */
  readonly count: number;
  /** Settles if the counting loop ends: "shutdown" at the context's shutdown, else why. */
  readonly done: Promise<string>;
}

/**
 * Starts counting what `xsub` passes upstream; call before the proxy takes the socket (the XSUB
 * binds one more inproc endpoint here).
 */
export function countTopics(ctx: Context, xsub: Socket): TopicCount {
  const address = `inproc://adaptor-topics-${++seq}`;
  xsub.bind(address);
  const observer = ctx.socket(ZMQ_XPUB);
  observer.setInt(ZMQ_LINGER, 0);
  observer.setInt(ZMQ_XPUB_MANUAL, 1); // keeps no subscription of its own
  observer.setInt(ZMQ_RCVHWM, 0); // a flood's subscriptions are counted, not dropped
  observer.connect(address);
  let count = 0;
  const take = (frames: Frames) => {
    const first = frames[0];
    if (first?.[0] === 1) count++;
    else if (first?.[0] === 0) count = Math.max(0, count - 1);
  };
  const done = (async () => {
    try {
      for (;;) {
        const frames = await observer.receive(); // goes on through signals (EINTR)
        if (!frames) return "shutdown";
        take(frames);
        let more: Frames | undefined;
        while ((more = observer.tryReceive())) take(more);
      }
    } catch (error) {
      return ctx.isShutDown ? "shutdown" : `failed: ${(error as Error).message}`;
    } finally {
      observer.close();
    }
  })();
  return {
    get count() {
      return count;
    },
    done,
  };
}
