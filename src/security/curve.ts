/**
 * What `--curve-cert`, `--curve-clients` and `--curve-servers` resolve to, read and checked once
 * before the adaptor opens anything; which mechanism each endpoint gets
 * (`curveFor`); and the start-up lines that tell the operator what the configuration protects
 * and what it leaves open.
 */

import type { Config } from "../config/config.ts";
import { type Endpoint, type Role, ROLES, splitHostPort } from "../config/endpoint.ts";
import { StartupError, UsageError } from "../errors.ts";
import { literal, log } from "../ops/log.ts";
import { readCertificateFile, readSecretCertificate, type SecretCertificate } from "./cert.ts";
import { type ClientKeys, readClientKeys } from "./certstore.ts";
import { hasCapability } from "../zmq/binding.ts";

/**
 * The sockets that face the network and become CURVE servers with `--curve-cert` on all their
 * endpoints (the XSUB only on its bound tcp ones: its ipc endpoint is the gateway's).
 */
export const CURVE_ROLES: readonly Role[] = ["publish", "listen"];

/** Where each connecting tcp endpoint's server certificate was found (`--curve-servers`). */
export interface ServerKeys {
  readonly dir: string;
  /** Endpoint address (e.g. `tcp://edge1:6001`) → the server's public key and its file. */
  readonly keys: ReadonlyMap<string, { readonly key: string; readonly file: string }>;
}

/** What `--curve-cert`, `--curve-clients` and `--curve-servers` resolve to. */
export interface SecuritySetup {
  readonly cert?: SecretCertificate;
  readonly clients?: ClientKeys;
  readonly servers?: ServerKeys;
}

/** The mechanism of one endpoint: a CURVE server, a CURVE client of a known server, or none. */
export type CurveSetting =
  | { readonly kind: "server"; readonly secretKey: string; readonly zap: boolean }
  | {
    readonly kind: "client";
    readonly serverKey: string;
    readonly publicKey: string;
    readonly secretKey: string;
  }
  | undefined;

/**
 * Which mechanism `endpoint` of `role` gets. With `--curve-servers`, every connecting tcp
 * endpoint is a CURVE client; else, with `--curve-cert`, the XPUB and the inbound SUB are CURVE
 * servers on every endpoint, and the XSUB on its bound tcp endpoints. The rest is plaintext.
 */
export function curveFor(security: SecuritySetup, role: Role, endpoint: Endpoint): CurveSetting {
  const { cert, clients, servers } = security;
  if (!cert) return undefined;
  if (servers && endpoint.mode === "connect" && endpoint.transport === "tcp") {
    const server = servers.keys.get(endpoint.address)!;
    return { kind: "client", serverKey: server.key, publicKey: cert.publicKey, secretKey: cert.secretKey };
  }
  if (servesCurve(role, endpoint)) {
    return { kind: "server", secretKey: cert.secretKey, zap: clients !== undefined };
  }
  return undefined;
}

/** Whether `endpoint` of `role` is a CURVE server with `--curve-cert` (and is not a CURVE client). */
export function servesCurve(role: Role, endpoint: Endpoint): boolean {
  const bindsTcp = endpoint.mode === "bind" && endpoint.transport === "tcp";
  return CURVE_ROLES.includes(role) || (role === "bind" && bindsTcp);
}

/** The roles of `config` with a CURVE server endpoint: the sockets whose clients are judged. */
export function curveServerRoles(config: Config): Role[] {
  if (config.curveCert === undefined) return [];
  const client = (e: Endpoint) =>
    config.curveServers !== undefined && e.mode === "connect" && e.transport === "tcp";
  return (Object.keys(ROLES) as Role[]).filter((role) =>
    config[role].some((e) => !client(e) && servesCurve(role, e))
  );
}

/** `HOST:PORT` and `HOST` of a tcp address as written (`tcp://[src;]HOST:PORT`). */
function hostAndPort(address: string): { hostPort: string; host: string } {
  const target = address.replace(/^tcp:\/\//, "").split(";").at(-1)!;
  return { hostPort: target, host: splitHostPort(target)?.host ?? target };
}

/** Where a servers directory keeps the certificate of tcp `address`: `DIR/HOST:PORT`, else `DIR/HOST`. */
export function serverCertificateFiles(dir: string, address: string): string[] {
  const base = dir.replace(/\/+$/, "");
  const { hostPort, host } = hostAndPort(address);
  return [`${base}/${hostPort}`, `${base}/${host}`];
}

/**
 * The server certificate of `address` in a `--curve-servers` directory: the first of
 * `serverCertificateFiles` that is a file, and the files looked for (to name when none is).
 */
export function findServerCertificate(dir: string, address: string): { file?: string; candidates: string[] } {
  const candidates = serverCertificateFiles(dir, address);
  const file = candidates.find((path) => {
    try {
      return Deno.statSync(path).isFile;
    } catch {
      return false;
    }
  });
  return { file, candidates };
}

/**
 * Finds the server certificate of every connecting tcp endpoint in `config` in `dir`:
 * `DIR/HOST:PORT`, else `DIR/HOST`. Throws `UsageError` naming the endpoint and the files looked
 * for when one has none, or when one is not a certificate.
 */
export function readServerKeys(config: Config, dir: string, flag = "--curve-servers"): ServerKeys {
  const where = `${flag} '${dir}'`;
  try {
    if (!Deno.statSync(dir).isDirectory) throw new UsageError(`${where}: not a directory`);
  } catch (error) {
    if (error instanceof UsageError) throw error;
    throw new UsageError(`${where}: cannot read: ${(error as Error).message.replace(/,.*$/, "")}`);
  }
  const keys = new Map<string, { key: string; file: string }>();
  const base = dir.replace(/\/+$/, "");
  for (const role of Object.keys(ROLES) as Role[]) {
    for (const endpoint of config[role]) {
      if (endpoint.mode !== "connect" || endpoint.transport !== "tcp" || keys.has(endpoint.address)) continue;
      const { file, candidates } = findServerCertificate(base, endpoint.address);
      if (!file) {
        throw new UsageError(
          `${where}: no certificate for ${ROLES[role].flag} '>${endpoint.address}' (looked for ${
            candidates.join(" and ")
          })`,
        );
      }
      keys.set(endpoint.address, { key: readCertificateFile(file, `${where}: ${file}`).publicKey, file });
    }
  }
  return { dir, keys };
}

/**
 * Reads the certificate, the clients directory and the servers' certificates. Throws
 * `UsageError` (exit 2) for a bad certificate or directory; `StartupError` when libzmq has no
 * CURVE.
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
  const servers = config.curveServers !== undefined ? readServerKeys(config, config.curveServers) : undefined;
  return { cert, clients, servers };
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
export function warnAboutExposure(config: Config, security: SecuritySetup): void {
  const { cert, clients, servers } = security;
  if (cert) {
    const curveSockets = (Object.keys(ROLES) as Role[])
      .filter((r) => config[r].some((e) => curveFor(security, r, e)?.kind === "server"))
      .map((r) => ROLES[r].socket);
    if (curveSockets.length > 0) {
      log().info(literal(`CURVE on ${curveSockets.join(" and ")}; server public key ${cert.publicKey}`));
    }
    for (const [address, { file }] of servers?.keys ?? []) {
      log().info(literal(`CURVE client of ${address}: server key from ${file}`));
    }
    if (!clients && curveSockets.length > 0) {
      log().warn(
        "CURVE without --curve-clients: any client that knows the server's public key may connect " +
          "(traffic is encrypted, but clients are not authenticated)",
      );
    }
  }
  // Off loopback, forward without client keys is refused (config.ts); here it runs, and says so.
  const authenticated = (e: Endpoint) => {
    const curve = curveFor(security, "publish", e);
    return curve?.kind === "server" ? clients !== undefined : curve?.kind === "client";
  };
  const open = config.publish.filter((e) => !authenticated(e));
  if (config.subscriptions === "forward" && open.length > 0) {
    log().warn(literal(
      `--subscriptions forward on XPUB ${open.map((e) => e.address).join(", ")} without --curve-clients: ` +
        "any process that can connect can cancel a topic for every subscriber",
    ));
  }
  for (const role of Object.keys(ROLES) as Role[]) {
    for (const endpoint of config[role]) {
      if (endpoint.mode !== "bind") continue;
      const socket = ROLES[role].socket;
      const open = endpoint.transport === "tcp" && !LOOPBACK.test(endpoint.address);
      if (open && curveFor(security, role, endpoint) === undefined) {
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
