/**
 * What `--curve-cert`, `--curve-clients` and `--ipc-group` resolve to, read and checked once
 * before the adaptor opens anything, and the start-up lines that tell the operator what the
 * configuration protects and what it leaves open.
 */

import { type Config, type Role, ROLES } from "./config.ts";
import { StartupError, UsageError } from "./errors.ts";
import { resolveGroup } from "./ipc.ts";
import { literal, log } from "./log.ts";
import {
  type ClientKeys,
  readClientKeys,
  readSecretCertificate,
  type SecretCertificate,
} from "./security.ts";
import { hasCapability } from "./zmq.ts";

/** The sockets that face the network and become CURVE servers with `--curve-cert`. */
export const CURVE_ROLES: readonly Role[] = ["publish", "listen"];

/** What `--curve-cert`, `--curve-clients` and `--ipc-group` resolve to, checked before start. */
export interface SecuritySetup {
  readonly cert?: SecretCertificate;
  readonly clients?: ClientKeys;
  readonly gid?: number;
}

/**
 * Reads the certificate, the clients directory and the ipc group. Throws `UsageError` (exit 2)
 * for a bad certificate, directory or group; `StartupError` when libzmq has no CURVE.
 */
export function loadSecurity(config: Config): SecuritySetup {
  if (config.curveCert !== undefined && !hasCapability("curve")) {
    throw new StartupError(`--curve-cert '${config.curveCert}': this libzmq was built without CURVE support`);
  }
  const cert = config.curveCert !== undefined ? readSecretCertificate(config.curveCert) : undefined;
  let clients: ClientKeys | undefined;
  if (config.curveClients !== undefined) {
    clients = readClientKeys(config.curveClients);
    const [bad] = clients.invalid;
    if (bad) throw new UsageError(`--curve-clients '${config.curveClients}': ${bad.file}: ${bad.reason}`);
  }
  const gid = config.ipcGroup !== undefined ? resolveGroup(config.ipcGroup) : undefined;
  return { cert, clients, gid };
}

/** Logs the client keys admitted and the files skipped. */
export function reportClients(clients: ClientKeys): void {
  for (const { file, reason } of clients.ignored) log("auth").warn(literal(`Ignoring ${file}: ${reason}`));
  const n = clients.keys.size;
  log("auth").info(
    literal(`Admitting ${n} client key${n === 1 ? "" : "s"} from ${clients.dir} (SIGHUP rereads it)`),
  );
}

const LOOPBACK = /^tcp:\/\/(127\.[\d.]+|localhost|\[::1\]):/;

/** Warns, once at start, about every way the configuration leaves data or input open. */
export function warnAboutExposure(config: Config, cert?: SecretCertificate, clients?: ClientKeys): void {
  if (cert) {
    const curveSockets = CURVE_ROLES.filter((r) => config[r].length > 0).map((r) => ROLES[r].socket);
    log().info(literal(`CURVE on ${curveSockets.join(" and ")}; server public key ${cert.publicKey}`));
    if (!clients) {
      log().warn(
        "CURVE without --curve-clients: any client that knows the server's public key may connect " +
          "(traffic is encrypted, but clients are not authenticated)",
      );
    }
  }
  for (const role of Object.keys(ROLES) as Role[]) {
    for (const endpoint of config[role]) {
      if (endpoint.mode !== "bind") continue;
      const socket = ROLES[role].socket;
      const open = endpoint.transport === "tcp" && !LOOPBACK.test(endpoint.address);
      if (open && !(cert && CURVE_ROLES.includes(role))) {
        const can = role === "bind" ? "inject events" : "read what it sends";
        const hint = role === "publish" ? " (see --curve-cert)" : "";
        log().warn(literal(
          `${socket} ${endpoint.address} is plaintext and unauthenticated: anyone who can reach it can ${can}${hint}`,
        ));
      }
      if (endpoint.transport === "ipc" && !endpoint.ipcPath) {
        log().warn(literal(
          `${socket} ${endpoint.address} is an abstract socket: no file permissions protect it, any local ` +
            "process may connect (--ipc-mode/--ipc-group apply to ipc:///path endpoints only)",
        ));
      }
    }
  }
}
