/**
 * `--check`, like `nginx -t`: with the same flags and variables as a run, find everything a
 * start would refuse, without starting. Certificates and their modes, `--ipc-group` and whether
 * the adaptor may give files that group, each bound ipc path (its directory, another adaptor's
 * lock, a live socket, whether the gateway's workers could connect), each bound tcp port and
 * `--metrics` port. Nothing stays bound and no file is made: ports are bound and closed at
 * once, an existing lock file is locked and unlocked, a missing one is not created.
 *
 * Problems carry the exit code a start would end with (2: the configuration is wrong; 1: this
 * host cannot start it now, e.g. the port is busy or another adaptor runs); warnings are what
 * a start would warn about.
 */

import { dirname } from "node:path";
import type { Config } from "./config/config.ts";
import { type Endpoint, joinHostPort, type Role, ROLES } from "./config/endpoint.ts";
import { flagOf, type OptionKey, OPTIONS } from "./config/options.ts";
import { loadSecurity, type SecuritySetup, warnAboutExposure } from "./security/curve.ts";
import { exitCodeOf, oneLine, StartupError } from "./errors.ts";
import { expectedAccessProblem, readStatus } from "./ipc/gateway_access.ts";
import { lockPathOf } from "./ipc/ipc_guard.ts";
import { checkIpcPath } from "./ipc/path_check.ts";
import { resolveGroup } from "./ipc/socket_file.ts";
import { cannotWriteDirectory } from "./os/files.ts";
import { probeLock } from "./os/lock.ts";
import { fatalLine, literal, log, type LogOutput, writeStderr } from "./ops/log.ts";
import { describe, explain } from "./zmq/socket_options.ts";
import { PROGRAM } from "./version.ts";
import { ZmqError } from "./zmq/binding.ts";
import { ZMQ_IPV6, ZMQ_LINGER, ZMQ_PUB } from "./zmq/constants.ts";
import { Context, type Socket } from "./zmq/socket.ts";

/** One thing a start would refuse: its line, and the exit code the start would end with. */
export interface Problem {
  readonly message: string;
  readonly exitCode: number;
}

/** What `checkConfig` found. */
export interface CheckReport {
  /** The effective configuration: each setting's name and value as text; no secret in it. */
  readonly settings: [name: string, value: string][];
  readonly problems: Problem[];
  /** What a start would warn about that the check can see before it (who may connect). */
  readonly warnings: string[];
  /** What a start would do that is worth knowing (a stale socket file replaced). */
  readonly notes: string[];
  /** 0 when a start would succeed, else the worst problem's code (2 before 1). */
  readonly exitCode: number;
  /** The certificates read, when they could be. */
  readonly security?: SecuritySetup;
}

/** Checks `config` as a start would; binds nothing that stays, creates no file. */
export async function checkConfig(config: Config): Promise<CheckReport> {
  const problems: Problem[] = [];
  const warnings: string[] = [];
  const notes: string[] = [];
  const problem = (error: unknown) => problems.push({ message: oneLine(error), exitCode: exitCodeOf(error) });
  let security: SecuritySetup | undefined;
  try {
    security = loadSecurity(config);
  } catch (error) {
    problem(error);
  }
  let gid: number | undefined;
  if (config.ipcGroup !== undefined) {
    try {
      gid = resolveGroup(config.ipcGroup);
      const why = cannotUseGroup(gid);
      if (why) problem(new StartupError(`--ipc-group '${config.ipcGroup}': ${why}`));
    } catch (error) {
      problem(error);
    }
  }
  for (const { role, endpoint, path } of ipcFiles(config)) {
    const found = await checkIpcFile(config, role, endpoint, path, gid);
    for (const error of found.problems) problem(error);
    warnings.push(...found.warnings);
    notes.push(...found.notes);
  }
  for (const error of await checkBinds(config)) problem(error);
  if (config.metrics && config.metrics.port !== 0) {
    const { hostname, port } = config.metrics;
    try {
      Deno.listen({ hostname, port }).close();
    } catch (error) {
      const given = hostname.includes(":") ? `[${hostname}]:${port}` : `${hostname}:${port}`;
      const why = (error as Error).message.replace(/\s*\(os error \d+\)$/, "");
      problem(new StartupError(`--metrics '${given}': cannot listen: ${why}`));
    }
  }
  const worst = problems.some((p) => p.exitCode === 2) ? 2 : problems.length > 0 ? 1 : 0;
  const settings = describeConfig(config, security, gid);
  return { settings, problems, warnings, notes, exitCode: worst, security };
}

/**
 * Runs `checkConfig` and reports: the settings on stdout (`print`: one `name value` line each,
 * or with `--log-format json` one JSON object of them all), then on stderr each note
 * and warning as a log line and each problem as the line a start would end with. Returns the
 * exit code. The log must be set up (`setupLogging`) as a run's would be.
 */
export async function runCheck(
  config: Config,
  output: LogOutput,
  print: (line: string) => void = console.log,
): Promise<number> {
  const report = await checkConfig(config);
  if (output.format === "json") print(JSON.stringify(Object.fromEntries(report.settings)));
  else for (const [name, value] of report.settings) print(`${name} ${value}`);
  for (const note of report.notes) log().info(literal(note));
  for (const warning of report.warnings) log().warn(literal(warning));
  // The warnings a start gives about what the configuration leaves open.
  if (report.security) warnAboutExposure(config, report.security);
  if (report.problems.length === 0) log().info("check: a start with this configuration would succeed now");
  for (const { message, exitCode } of report.problems) {
    writeStderr(fatalLine(PROGRAM, message, exitCode, output));
  }
  return report.exitCode;
}

/** Every bound ipc endpoint with a socket file, and its role. */
function ipcFiles(config: Config): { role: Role; endpoint: Endpoint; path: string }[] {
  return (Object.keys(ROLES) as Role[]).flatMap((role) =>
    config[role].flatMap((endpoint) =>
      endpoint.mode === "bind" && endpoint.ipcPath ? [{ role, endpoint, path: endpoint.ipcPath }] : []
    )
  );
}

/** The lock, the path and its directory, and who could connect: as `IpcGuard` and a bind would find them. */
async function checkIpcFile(
  config: Config,
  role: Role,
  endpoint: Endpoint,
  path: string,
  gid: number | undefined,
): Promise<{ problems: unknown[]; warnings: string[]; notes: string[] }> {
  const what = describe(role, endpoint);
  const dir = dirname(path);
  const lockPath = lockPathOf(path);
  const result = { problems: [] as unknown[], warnings: [] as string[], notes: [] as string[] };
  const lock = probeLock(lockPath);
  if (lock === "held") {
    let holder = "";
    try {
      const pid = Deno.readTextFileSync(lockPath).trim();
      if (/^\d+$/.test(pid)) holder = `pid ${pid}, `;
    } catch {
      // unreadable: say less
    }
    result.problems.push(
      new StartupError(
        `${what}: another process is serving ${path} (${holder}holding ${lockPath}); refusing to take its ` +
          `traffic (stop it first)`,
      ),
    );
    return result;
  }
  try {
    if ((await checkIpcPath(path, what)) === "stale") {
      result.notes.push(`${what}: a start would replace the stale socket file ${path}`);
    }
  } catch (error) {
    result.problems.push(error);
    return result;
  }
  // The lock file is made beside the socket file, and the bind makes the socket file there.
  const unwritable = cannotWriteDirectory(dir);
  if (typeof lock === "object" || (lock === "absent" && unwritable !== undefined)) {
    const why = typeof lock === "object" ? lock.why : unwritable;
    result.problems.push(new StartupError(`${what}: cannot lock ${lockPath}: ${why}`));
    return result;
  }
  if (unwritable !== undefined) {
    result.problems.push(new StartupError(`${what}: cannot bind in ${dir}: ${unwritable}`));
    return result;
  }
  if (role === "bind" || role === "push") {
    const ids = credentials();
    if (ids) {
      // The file's group: --ipc-group, else a setgid directory's, else the adaptor's own.
      let group = gid ?? ids.gid;
      if (gid === undefined) {
        const info = Deno.statSync(dir);
        if (info.mode !== null && (info.mode & 0o2000) !== 0 && info.gid !== null) group = info.gid;
      }
      const access = expectedAccessProblem(path, { uid: ids.uid, gid: group, mode: config.ipcMode }, {
        ipcGroupGiven: gid !== undefined,
        ownGid: ids.gid,
      });
      if (access) result.warnings.push(access);
    }
  }
  return result;
}

/**
 * Binds every tcp endpoint with a fixed port, and every abstract ipc endpoint, as the start
 * would (libzmq, the same address text), all at once so that two of ours that clash are found
 * too; then closes them. Returns what failed, named as a start names it.
 */
async function checkBinds(config: Config): Promise<StartupError[]> {
  const targets = (Object.keys(ROLES) as Role[]).flatMap((role) =>
    config[role].filter((e) =>
      e.mode === "bind" &&
      ((e.transport === "tcp" && !/:(\*|0)$/.test(e.address)) || (e.transport === "ipc" && !e.ipcPath))
    ).map((endpoint) => ({ role, endpoint }))
  );
  if (targets.length === 0) return [];
  const failures: StartupError[] = [];
  const ctx = new Context({ ioThreads: 1 });
  const sockets: Socket[] = [];
  try {
    for (const { role, endpoint } of targets) {
      const socket = ctx.socket(ZMQ_PUB);
      sockets.push(socket);
      socket.setInt(ZMQ_LINGER, 0);
      if (endpoint.address.includes("[")) socket.setInt(ZMQ_IPV6, 1);
      try {
        socket.bind(endpoint.address);
      } catch (error) {
        const why = error instanceof ZmqError ? explain(error) : String(error);
        failures.push(new StartupError(`${describe(role, endpoint)}: cannot bind: ${why}`));
      }
    }
  } finally {
    for (const socket of sockets) socket.close();
    await ctx.terminate();
  }
  return failures;
}

/** This process's effective uid and gid, supplementary groups, and whether it has CAP_CHOWN. */
function credentials(): { uid: number; gid: number; groups: number[]; chown: boolean } | undefined {
  const text = readStatus();
  if (text === undefined) return undefined;
  const uid = /^Uid:\s+\d+\s+(\d+)/m.exec(text);
  const gid = /^Gid:\s+\d+\s+(\d+)/m.exec(text);
  if (!uid || !gid) return undefined;
  const groups = (/^Groups:(.*)$/m.exec(text)?.[1] ?? "").trim().split(/\s+/).filter((g) => g !== "")
    .map(Number);
  const caps = /^CapEff:\s*([0-9a-f]+)/m.exec(text);
  const chown = caps ? (BigInt(`0x${caps[1]}`) & 1n) !== 0n : Number(uid[1]) === 0; // CAP_CHOWN is bit 0
  return { uid: Number(uid[1]), gid: Number(gid[1]), groups, chown };
}

/**
 * Why this process could not give its socket files group `gid` (chown needs CAP_CHOWN, or
 * membership of the group); undefined when it could, or cannot tell.
 */
function cannotUseGroup(gid: number): string | undefined {
  const ids = credentials();
  if (!ids || ids.chown || ids.gid === gid || ids.groups.includes(gid)) return undefined;
  return `the adaptor (uid ${ids.uid}) is neither a member of group ${gid} nor allowed to chown ` +
    `(CAP_CHOWN), so it could not give its socket files that group`;
}

/**
 * The effective configuration, one `[name, value]` per setting in the order of `--help`'s
 * table (names as the flags, without `--`): endpoints with `@` (bind) or `>` (connect), comma
 * separated as the variables take them; certificates and directories by path, never their
 * contents (the public key of `--curve-cert` is shown; it is public).
 */
export function describeConfig(
  config: Config,
  security?: SecuritySetup,
  gid?: number,
): [name: string, value: string][] {
  return OPTIONS.map((option) => [flagOf(option).slice(2), valueText(config, option.key, security, gid)]);
}

function valueText(config: Config, key: OptionKey, security?: SecuritySetup, gid?: number): string {
  switch (key) {
    case "bind":
    case "publish":
    case "listen":
    case "push": {
      const list = config[key];
      return list.length === 0
        ? "off"
        : list.map((e) => `${e.mode === "bind" ? "@" : ">"}${e.address}`).join(",");
    }
    case "ipcMode":
      return "0" + config.ipcMode.toString(8).padStart(3, "0");
    case "ipcGroup":
      if (config.ipcGroup === undefined) return "off (the adaptor's group)";
      return gid === undefined || String(gid) === config.ipcGroup
        ? config.ipcGroup
        : `${config.ipcGroup} (gid ${gid})`;
    case "metrics": {
      if (!config.metrics) return "off";
      return joinHostPort(config.metrics.hostname, config.metrics.port);
    }
    case "curveCert":
      if (config.curveCert === undefined) return "off";
      return security?.cert
        ? `${config.curveCert} (secret certificate; public key ${security.cert.publicKey})`
        : config.curveCert;
    case "curveClients": {
      if (config.curveClients === undefined) return "off";
      const n = security?.clients?.keys.size;
      return n === undefined
        ? config.curveClients
        : `${config.curveClients} (${n} client key${n === 1 ? "" : "s"})`;
    }
    case "curveServers":
      return config.curveServers ?? "off";
    default: {
      const value = config[key];
      return value === undefined ? "off" : String(value);
    }
  }
}
