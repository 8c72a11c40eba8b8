/**
 * Can the gateway reach the socket file?
 *
 * nginx's workers run as a user of their own (`www-data` on Debian/Ubuntu, `nginx` on RHEL-likes),
 * while the adaptor often runs as root. Connecting to a unix socket needs write permission on the
 * socket file and search (`x`) permission on every directory above it; a worker that lacks either
 * gets EACCES on every reconnect, and nothing anywhere says so: the adaptor sees no connection at
 * all. This module looks at a bound socket file the way such a worker would and returns one
 * warning line for the operator when it could not connect.
 *
 * Who counts as "the gateway": a local user that is not the adaptor's user. It can connect when
 * the file's "other" bits allow it, or when it is a member of the file's group, that group was
 * chosen for it (`--ipc-group`, or inherited from a setgid directory: any group other than the
 * adaptor's own primary group), and the group bits allow it. The adaptor's own primary group is
 * not the gateway's unless chosen explicitly (root's group `root`, say, is no worker's), or named as
 * the workers' groups are (`www-data`, `nginx`); and an adaptor that runs as `www-data` or `nginx`
 * itself is taken to be the workers' user (the workers then connect as the file's owner).
 *
 * A directory above the file lets such a user through when its "other" bits have `x`, or when it
 * belongs to the file's group and its group bits have `x`. (A worker that owns a directory, or is
 * in a directory's group by other means, may pass where this says it cannot: the check stays on
 * the safe side of what it can know from the file system alone.)
 */

import { dirname } from "node:path";
import { readAccounts } from "../os/accounts.ts";
import { readProcFile } from "../os/libc.ts";

/** What the check needs to know about the adaptor itself. */
export interface GatewayAccessOptions {
  /** The adaptor's (effective) primary group id; default: this process's, see `processIds`. */
  readonly ownGid?: number;
  /** Whether the file's group was chosen explicitly (`--ipc-group` / `ADAPTOR_IPC_GROUP`). */
  readonly ipcGroupGiven: boolean;
  /** For names in the message only (default /etc/passwd); numbers when it cannot be read. */
  readonly passwdFile?: string;
  /** For names in the message only (default /etc/group). */
  readonly groupFile?: string;
}

/**
 * The users (and their groups) nginx's workers run as: Debian/Ubuntu's and RHEL-likes'. A socket
 * file of that user, or of that group, is the gateway's even when it is the adaptor's own.
 */
export const WORKER_NAMES: readonly string[] = ["www-data", "nginx"];

/** The fix for the usual case, one per distribution family. */
export const IPC_GROUP_HINT = "--ipc-group www-data (Debian/Ubuntu) or --ipc-group nginx (RHEL-likes)";

interface Node {
  readonly path: string;
  readonly uid: number;
  readonly gid: number;
  /** st_mode: file type and permission bits. */
  readonly mode: number;
  readonly type: "s" | "d" | "-" | "l" | "?";
}

/**
 * Why a local user other than the adaptor's (an nginx worker) could not connect to the socket file
 * at `path` just bound, as one line for the log; `undefined` when such a user could connect.
 *
 * E.g. `socket file /tmp/nginx_queue_listen is srw-rw---- root:root: only root and group root may
 * connect, so nginx workers running as another user get "Permission denied" and no event arrives;
 * start the adaptor with --ipc-group www-data (Debian/Ubuntu) or --ipc-group nginx (RHEL-likes)
 * (ADAPTOR_IPC_GROUP)`.
 *
 * Never throws: a file or directory it cannot inspect is reported as the problem.
 */
export function gatewayAccessProblem(path: string, options: GatewayAccessOptions): string | undefined {
  let file: Node;
  let dirs: Node[];
  try {
    file = inspect(path, Deno.lstatSync(path));
    dirs = ancestors(path);
  } catch (error) {
    return `cannot check who may connect to socket file ${path} (${(error as Error).message}); ` +
      `nginx workers may not reach it either`;
  }
  return judge(file, dirs, "is", options);
}

/**
 * The same question asked before the socket file exists (`--check`): about the file a bind
 * would make at `path`, owned by `file.uid` and group `file.gid`, with permissions `file.mode`.
 * The directories above it must exist.
 */
export function expectedAccessProblem(
  path: string,
  file: { uid: number; gid: number; mode: number },
  options: GatewayAccessOptions,
): string | undefined {
  let dirs: Node[];
  try {
    dirs = ancestors(path);
  } catch (error) {
    return `cannot check who could connect to socket file ${path} (${(error as Error).message}); ` +
      `nginx workers may not reach it either`;
  }
  const node: Node = { path, uid: file.uid, gid: file.gid, mode: 0o140000 | (file.mode & 0o777), type: "s" };
  return judge(node, dirs, "would be", options);
}

function judge(file: Node, dirs: Node[], is: string, options: GatewayAccessOptions): string | undefined {
  const { path } = file;
  const names = new Names(options);
  const ownGid = options.ownGid ?? processIds()?.gid;
  const perms = file.mode & 0o777;
  const otherCanWrite = (perms & 0o002) !== 0;
  // Unknown own group (no /proc): the file's group is taken for the adaptor's own, the safe side.
  const groupIsGateways = options.ipcGroupGiven || (ownGid !== undefined && file.gid !== ownGid) ||
    WORKER_NAMES.includes(names.group(file.gid));
  const groupCanWrite = groupIsGateways && (perms & 0o020) !== 0;
  // An adaptor that runs as the workers' own user (User=www-data): they connect as the file's owner.
  if (WORKER_NAMES.includes(names.user(file.uid)) && (perms & 0o200) !== 0) {
    const ownerBlocked = dirs.find((d) =>
      !((d.uid === file.uid && d.mode & 0o100) || (d.gid === file.gid && d.mode & 0o010) || d.mode & 0o001)
    );
    if (!ownerBlocked) return undefined;
  }

  // Each way in: "other", then the file's group; a way is open when the file and every directory allow it.
  const blockedForOther = dirs.find((d) => (d.mode & 0o001) === 0);
  const blockedForGroup = dirs.find((d) =>
    !((d.mode & 0o001) !== 0 || (d.gid === file.gid && (d.mode & 0o010)))
  );
  if (otherCanWrite && !blockedForOther) return undefined;
  if (groupCanWrite && !blockedForGroup) return undefined;

  const described = `socket file ${path} ${is} ${names.describe(file)}`;
  const group = names.group(file.gid);
  if (groupCanWrite || otherCanWrite) {
    // The file itself lets them in; a directory above it does not.
    const dir = groupCanWrite ? blockedForGroup! : blockedForOther!;
    const gives = groupCanWrite
      ? `gives neither group ${group} nor others search (x) permission`
      : "gives others no search (x) permission";
    const fix = !groupCanWrite
      ? `chmod o+x ${dir.path}`
      : dir.gid === file.gid
      ? `chmod g+x ${dir.path}`
      : `chgrp ${group} ${dir.path} and chmod g+x it (or o+x)`;
    return `${described} but directory ${dir.path} (${
      names.describe(dir)
    }) ${gives}, so nginx workers running as another user get "Permission denied" and no event arrives; ` +
      `${fix}, or bind elsewhere (-b)`;
  }
  const who = `only ${names.user(file.uid)}` + (groupIsGateways ? "" : ` and group ${group}`) +
    " may connect";
  const fix = groupIsGateways
    ? `give the group write permission: --ipc-mode 0660 (ADAPTOR_IPC_MODE)`
    : `start the adaptor with ${IPC_GROUP_HINT} (ADAPTOR_IPC_GROUP)`;
  // Once the workers' group is set, a directory of the adaptor's own group without o+x stops them still.
  const later = groupIsGateways ? undefined : dirs.find((d) => (d.mode & 0o001) === 0 && d.gid === file.gid);
  const dirNote = later ? dirAdvice(later, names) : "";
  return `${described}: ${who}, so nginx workers running as another user get "Permission denied" and no ` +
    `event arrives; ${fix}${dirNote}`;
}

/** What to do as well about a directory that would block the group once it is set. */
function dirAdvice(dir: Node, names: Names): string {
  return `; directory ${dir.path} (${names.describe(dir)}) must let the workers search it too ` +
    `(chgrp it to their group and chmod g+x, or chmod o+x)`;
}

function inspect(path: string, info: Deno.FileInfo): Node {
  const type = info.isSocket ? "s" : info.isDirectory ? "d" : info.isFile ? "-" : info.isSymlink ? "l" : "?";
  return { path, uid: info.uid ?? -1, gid: info.gid ?? -1, mode: info.mode ?? 0, type };
}

/**
 * This process's effective user and group ids, from /proc/self/status: `Deno.uid()` would need
 * `--allow-sys`, which the adaptor does not ask for (and Deno's file API refuses /proc/self
 * without --allow-all: read through libc then). `undefined` where /proc cannot be read.
 */
export function processIds(status = "/proc/self/status"): { uid: number; gid: number } | undefined {
  const text = readStatus(status);
  if (text === undefined) return undefined;
  // "Uid:\treal\teffective\tsaved\tfs"
  const uid = /^Uid:\s+\d+\s+(\d+)/m.exec(text);
  const gid = /^Gid:\s+\d+\s+(\d+)/m.exec(text);
  return uid && gid ? { uid: Number(uid[1]), gid: Number(gid[1]) } : undefined;
}

/** A /proc status file's text, by Deno's file API or else through libc. */
export function readStatus(status = "/proc/self/status"): string | undefined {
  try {
    return Deno.readTextFileSync(status);
  } catch {
    return readProcFile(status);
  }
}

/** Every directory above `path` (symbolic links resolved), nearest first, "/" last. */
function ancestors(path: string): Node[] {
  const nodes: Node[] = [];
  let dir = Deno.realPathSync(dirname(path));
  for (;;) {
    nodes.push(inspect(dir, Deno.statSync(dir)));
    const up = dirname(dir);
    if (up === dir) return nodes;
    dir = up;
  }
}

/** `ls -l`-style mode text: "srw-rw----", "drwxrwxrwt". */
export function modeText(type: string, mode: number): string {
  const bit = (mask: number, c: string) => (mode & mask ? c : "-");
  const exec = (x: number, special: number, set: string) =>
    mode & special ? (mode & x ? set : set.toUpperCase()) : bit(x, "x");
  return type +
    bit(0o400, "r") + bit(0o200, "w") + exec(0o100, 0o4000, "s") +
    bit(0o040, "r") + bit(0o020, "w") + exec(0o010, 0o2000, "s") +
    bit(0o004, "r") + bit(0o002, "w") + exec(0o001, 0o1000, "t");
}

/** User and group names from the system's files, for messages; the number when unknown. */
class Names {
  #users: ReadonlyMap<number, string>;
  #groups: ReadonlyMap<number, string>;

  constructor(options: GatewayAccessOptions) {
    this.#users = readAccounts(options.passwdFile ?? "/etc/passwd").names;
    this.#groups = readAccounts(options.groupFile ?? "/etc/group").names;
  }

  user(uid: number): string {
    return this.#users.get(uid) ?? String(uid);
  }

  group(gid: number): string {
    return this.#groups.get(gid) ?? String(gid);
  }

  /** e.g. "srw-rw---- root:root". */
  describe(node: Node): string {
    return `${modeText(node.type, node.mode)} ${this.user(node.uid)}:${this.group(node.gid)}`;
  }
}
