/**
 * The frame most end-to-end tests share: an adaptor on fresh main-channel endpoints (XSUB on an
 * ipc path, XPUB on a free tcp port), peers to drive it, and at the end the peers closed and a
 * clean stop (exit code 0) checked.
 */

import assert from "node:assert/strict";
import { freePort, ipcPath } from "./net.ts";
import { Peers } from "./peers.ts";
import { AdaptorProcess } from "./process.ts";

/** What a test body gets: the endpoints, the running adaptor and a set of peers. */
export interface Session {
  /** The XSUB endpoint the gateway's publishers connect to (`-b`). */
  readonly bind: string;
  /** The XPUB endpoint subscribers connect to (`-p`). */
  readonly publish: string;
  readonly adaptor: AdaptorProcess;
  readonly peers: Peers;
}

/**
 * Starts `adaptor -b <ipc> -p <tcp> ...extraArgs`, waits until it is ready and runs `body`.
 * Afterwards, pass or fail, closes the peers and stops the adaptor; when `body` passed, the
 * adaptor must also have exited 0 (its log is in the message). A failure of `body` is the one
 * reported: a stop that fails after it would only hide the cause. Returns the stopped adaptor,
 * whose log a test may still read.
 */
export async function withAdaptor(
  extraArgs: readonly string[],
  body: (session: Session) => Promise<void>,
): Promise<AdaptorProcess> {
  const bind = `ipc://${ipcPath("xsub")}`;
  const publish = `tcp://127.0.0.1:${freePort()}`;
  const adaptor = new AdaptorProcess(["-b", bind, "-p", publish, ...extraArgs]);
  const peers = new Peers();
  let passed = false;
  try {
    await adaptor.ready();
    await body({ bind, publish, adaptor, peers });
    passed = true;
  } finally {
    await peers.close();
    const { status } = await adaptor.stop();
    if (passed) assert.equal(status.code, 0, adaptor.lines.join("\n"));
  }
  return adaptor;
}
