/**
 * Whether a running adaptor does its job, as `/healthz` reports it.
 *
 * Healthy means: not stopping, every channel's proxy loop still runs, and every ipc socket
 * file the adaptor bound is still there and still its own. The last point catches a real
 * failure that leaves the process looking fine: a tmp cleaner (or a careless `rm`) deletes
 * the socket file, and from then on no gateway worker can connect, although the socket is
 * still bound to the now nameless inode.
 */

import { type OwnedSocketFile, socketFileState } from "../ipc/socket_file.ts";

/** The answer of a health check: ok, or the first reason it is not. */
export type Health = { readonly ok: true } | { readonly ok: false; readonly reason: string };

/** What the health check looks at; `AdaptorHandle.health()` fills it from the live adaptor. */
export interface HealthInputs {
  readonly stopping: boolean;
  /** What ended by itself while the adaptor ran (a proxy, a monitor, the ZAP handler), if anything. */
  readonly failed?: string;
  /** Why the last reload (SIGHUP) could not be applied, until one is. */
  readonly reloadFailed?: string;
  /** Why the gateway's publishers are missing (`PublisherPresence.absence`), if they are. */
  readonly absent?: string;
  /** Each channel and whether its proxy loop still runs (`Forwarder.running`). */
  readonly channels: readonly { readonly name: string; readonly running: boolean }[];
  /** The ipc socket files the adaptor bound. */
  readonly socketFiles: readonly OwnedSocketFile[];
}

/** Checks `inputs`; cheap enough for every `/healthz` request (one lstat per socket file). */
export function assessHealth(inputs: HealthInputs): Health {
  if (inputs.stopping) return { ok: false, reason: "stopping" };
  if (inputs.failed) return { ok: false, reason: inputs.failed };
  for (const channel of inputs.channels) {
    if (!channel.running) return { ok: false, reason: `the ${channel.name} channel's proxy is not running` };
  }
  for (const file of inputs.socketFiles) {
    const state = socketFileState(file);
    if (state === "missing") {
      return { ok: false, reason: `socket file ${file.path} was removed; peers can no longer connect` };
    }
    if (state === "replaced") {
      return { ok: false, reason: `socket file ${file.path} was replaced by another process's` };
    }
  }
  // Running on the old keys: the rotation the operator asked for did not happen.
  if (inputs.reloadFailed) return { ok: false, reason: inputs.reloadFailed };
  // Up, but nobody can reach it: not "ok", so that a probe tells it apart. A restart cannot mend
  // it (permissions, a wrong endpoint, nginx down): alert on it, do not restart on it.
  if (inputs.absent) return { ok: false, reason: inputs.absent };
  return { ok: true };
}
