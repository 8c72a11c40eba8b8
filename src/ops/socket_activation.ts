/**
 * systemd's socket activation (`sd_listen_fds(3)`): the listening sockets a socket unit hands the
 * service (`LISTEN_PID`, `LISTEN_FDS`, `LISTEN_FDNAMES`; descriptors from 3 on). The adaptor binds
 * the endpoint with a socket's address on that socket (libzmq's `ZMQ_USE_FD`) instead of making
 * its own, so the socket outlives the process: while the adaptor restarts, nginx's workers
 * connect into its queue, and the new adaptor takes them at once (no wait for their reconnect
 * interval, no window where the path refuses them).
 *
 * @example What systemd passed, matched to the endpoints that bind
 * ```ts
 * import { claimListeners, inheritedListeners } from "./socket_activation.ts";
 * import { makeConfig } from "../config/config.ts";
 *
 * const config = makeConfig({ bind: ["ipc:///run/api-gateway/nginx_queue_listen"] });
 * const listeners = inheritedListeners(Deno.env.toObject()); // [] unless systemd started us
 * const claimed = claimListeners(listeners, config.bind);
 * console.log(claimed.get(config.bind[0])?.fd); // 3 under adaptor.socket, else undefined
 * ```
 */

import type { Endpoint } from "../config/endpoint.ts";
import { UsageError } from "../errors.ts";
import { clearListenerFilter, listeningEndpoint } from "../os/sockets.ts";

/** The first descriptor systemd passes (`SD_LISTEN_FDS_START`). */
export const LISTEN_FDS_START = 3;

/** More than any socket unit of ours would pass: a larger count is a corrupt environment. */
const MAX_LISTEN_FDS = 64;

/** A listening socket handed to the adaptor, and the endpoint it listens on. */
export interface InheritedListener {
  readonly fd: number;
  /** As libzmq writes it: `ipc:///run/api-gateway/nginx_queue_listen`, `tcp://0.0.0.0:6001`. */
  readonly endpoint: string;
  /** Its `FileDescriptorName=` (the socket unit's name by default). */
  readonly name?: string;
}

/**
 * The listening sockets systemd passed to this process, from `env`: none when `LISTEN_PID` is
 * unset or names another process (the variables leaked from a parent). Throws `UsageError` (one
 * line, exit 2: a restart cannot mend a unit) for a count that is not one, or a descriptor that
 * is not a listening stream socket on a path or an IP address.
 */
export function inheritedListeners(env: Record<string, string>, pid = Deno.pid): InheritedListener[] {
  if (env.LISTEN_PID === undefined || env.LISTEN_FDS === undefined) return [];
  if (env.LISTEN_PID !== String(pid)) return [];
  const count = /^\d{1,3}$/.test(env.LISTEN_FDS) ? Number(env.LISTEN_FDS) : NaN;
  if (!(count <= MAX_LISTEN_FDS)) {
    throw new UsageError(
      `LISTEN_FDS: '${env.LISTEN_FDS}' is not a count of passed sockets (0-${MAX_LISTEN_FDS})`,
    );
  }
  const names = env.LISTEN_FDNAMES?.split(":") ?? [];
  return Array.from({ length: count }, (_, i) => {
    const fd = LISTEN_FDS_START + i;
    const name = names[i] || undefined;
    const found = listeningEndpoint(fd);
    const which = `LISTEN_FDS: descriptor ${fd}${name ? ` (${name})` : ""}`;
    if (found === undefined) throw new UsageError(`${which}: socket activation needs glibc, not found here`);
    if ("why" in found) throw new UsageError(`${which} is ${found.why}`);
    // The socket outlives each adaptor: a filter the last one left (its cap, its blocks) goes.
    clearListenerFilter(fd);
    return { fd, endpoint: found.endpoint, name };
  });
}

/**
 * Which of `endpoints` binds on which of `listeners`. Throws `UsageError` for a passed socket no
 * endpoint binds (a socket unit and a configuration that disagree: the workers would connect to
 * a socket nobody serves) and for two passed on one address.
 */
export function claimListeners(
  listeners: readonly InheritedListener[],
  endpoints: readonly Endpoint[],
): Map<Endpoint, InheritedListener> {
  const claimed = new Map<Endpoint, InheritedListener>();
  const seen = new Set<string>();
  for (const listener of listeners) {
    if (seen.has(listener.endpoint)) {
      throw new UsageError(`LISTEN_FDS: two passed sockets listen on ${listener.endpoint}`);
    }
    seen.add(listener.endpoint);
    const endpoint = endpoints.find((e) => e.mode === "bind" && sameAddress(e, listener.endpoint));
    if (!endpoint) {
      throw new UsageError(
        `systemd passed a socket listening on ${listener.endpoint} (descriptor ${listener.fd}), but no ` +
          `endpoint binds it: bind it (-b, -p or -u) or take it out of the socket unit`,
      );
    }
    claimed.set(endpoint, listener);
  }
  return claimed;
}

/** Whether the configured `endpoint` names the address a passed socket listens on. */
function sameAddress(endpoint: Endpoint, listening: string): boolean {
  if (endpoint.transport === "ipc") {
    const path = endpoint.ipcPath;
    if (!path) return false;
    return listening === `ipc://${path.startsWith("/") ? path : `${Deno.cwd()}/${path}`}`;
  }
  if (endpoint.transport !== "tcp") return false;
  const match = /^tcp:\/\/(.+):(\d+)$/.exec(endpoint.address);
  if (!match) return false;
  const host = match[1] === "*" ? "0.0.0.0" : match[1];
  try {
    // The URL parser writes an IPv6 address in its shortest form, as listeningEndpoint does.
    const normal = host.startsWith("[") ? new URL(`http://${host}:1`).hostname : host;
    return listening === `tcp://${normal}:${Number(match[2])}`;
  } catch {
    return false;
  }
}
