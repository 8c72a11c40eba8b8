/**
 * Are the gateway's workers there? The XSUB's connections, counted from its socket events: when
 * none has been connected for `--publisher-grace` seconds (since start, or since the last one
 * left), the adaptor warns once with what usually causes it, and `/healthz` and the
 * `adaptor_publishers_absent` gauge report it until a publisher connects.
 *
 * Why: nginx's workers connect as they start, whatever the traffic, and a worker that cannot
 * connect (EACCES on the socket file: another user, the wrong group) retries in silence. Without
 * this the adaptor looks fine (`ok`, INFO lines) while no event arrives.
 */

import { IPC_GROUP_HINT } from "../ipc/gateway_access.ts";
import { literal, log } from "../ops/log.ts";
import type { SocketEvent } from "../zmq/monitor.ts";
import { ConnectedPeers } from "../zmq/connected_peers.ts";

/** Watches one socket's peers; `report` gets its events. */
export class PublisherPresence {
  readonly #peers = new ConnectedPeers();
  readonly #graceMs: number;
  readonly #where: string;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #absent: string | undefined;
  #everConnected = false;
  #closed = false;

  /**
   * `where` names the socket in messages, e.g. "XSUB ipc:///tmp/nginx_queue_listen";
   * `graceSeconds` 0 turns the watch off.
   */
  constructor(where: string, graceSeconds: number) {
    this.#where = where;
    this.#graceMs = graceSeconds * 1000;
    this.#arm();
  }

  /** Publishers connected now. */
  get connected(): number {
    return this.#peers.size;
  }

  /** Why the publishers are missing, while they have been for longer than the grace; else undefined. */
  get absence(): string | undefined {
    return this.#absent;
  }

  /** One event of the watched socket. */
  report(event: SocketEvent): void {
    const change = this.#peers.report(event);
    if (change === 1) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
      if (this.#absent !== undefined) {
        log().info(literal(`a publisher connected to the ${this.#where} again`));
      }
      this.#absent = undefined;
      this.#everConnected = true;
    } else if (change === -1 && this.#peers.size === 0) {
      this.#arm();
    }
  }

  #arm(): void {
    if (this.#graceMs === 0 || this.#closed) return;
    clearTimeout(this.#timer);
    const since = this.#everConnected ? "since the last one left" : "since start";
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      const seconds = this.#graceMs / 1000;
      this.#absent = `no publisher connected to the ${this.#where} for ${seconds} s (${since})`;
      log().warn(literal(
        `${this.#absent}: if nginx runs, its workers cannot reach the socket: check that they may connect ` +
          `to it (${IPC_GROUP_HINT}; every directory above it needs x for them) and that they publish to ` +
          `this endpoint`,
      ));
    }, this.#graceMs);
  }

  /** Stops the timer. */
  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
  }
}
