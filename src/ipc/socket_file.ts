/**
 * The socket files the adaptor binds: born mode 0000 and given their mode and group through one
 * descriptor, still ours or not (device and inode), removed only when ours, and watched.
 */

import { dirname } from "node:path";
import { StartupError, UsageError } from "../errors.ts";
import { watchFiles } from "./file_events.ts";
import { groupId } from "../os/accounts.ts";
import { cannotWriteDirectory, protectSocketFile, setUmask } from "../os/files.ts";
import { type Accounts, readAccounts } from "../os/accounts.ts";

/** The identity of a socket file we created. */
export interface OwnedSocketFile {
  readonly path: string;
  readonly dev: number;
  readonly ino: number;
  /** Birth time in ms, where the file system records it. */
  readonly born?: number;
  /** systemd's socket unit made it and passed us its socket: watched, never removed by us. */
  readonly inherited?: boolean;
}

/** Records the socket file just bound at `path`, for `removeOwnedFile`. */
export function ownSocketFile(path: string): OwnedSocketFile | undefined {
  try {
    const info = Deno.lstatSync(path);
    return { path, dev: info.dev, ino: info.ino ?? 0, born: info.birthtime?.getTime() };
  } catch {
    return undefined; // nothing to own (e.g. already removed)
  }
}

/**
 * Whether `info` is the file we bound. Device and inode alone are not enough: a file system
 * hands a freed inode number to the next file made, so a path removed and bound again by
 * another process can come back with our inode. The birth time (statx; Deno reports it to the
 * millisecond) tells them apart where the file system records it.
 */
function isSameFile(info: Deno.FileInfo, file: OwnedSocketFile): boolean {
  return info.dev === file.dev && (info.ino ?? 0) === file.ino &&
    (file.born === undefined || info.birthtime?.getTime() === file.born);
}

/** What one lstat of a socket file we bound finds. */
type Lookup =
  | { readonly state: "ours" | "replaced" }
  | { readonly state: "missing"; readonly error: unknown };

function lookUp(file: OwnedSocketFile): Lookup {
  try {
    return { state: isSameFile(Deno.lstatSync(file.path), file) ? "ours" : "replaced" };
  } catch (error) {
    return { state: "missing", error };
  }
}

/** Whether the socket file we bound is still there and still ours (for the health check). */
export function socketFileState(file: OwnedSocketFile): "ours" | "missing" | "replaced" {
  return lookUp(file).state;
}

/**
 * Removes `file` if it is still the one we bound; returns whether it removed it. A failure
 * other than "already gone" (e.g. the directory turned read-only) goes to `onFailure`.
 */
export function removeOwnedFile(file: OwnedSocketFile, onFailure?: (why: string) => void): boolean {
  if (socketFileState(file) !== "ours") return false;
  try {
    Deno.removeSync(file.path);
    return true;
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) onFailure?.((error as Error).message);
    return false;
  }
}

/** What became of a socket file we bound, as seen from the file system. */
export type SocketFileState = "ok" | "removed" | "replaced" | "unwritable";

/** The state of `file` now, and a sentence for the operator when it is not "ok". */
export function describeSocketFile(file: OwnedSocketFile): { state: SocketFileState; text: string } {
  const dir = dirname(file.path);
  const found = lookUp(file);
  if (found.state === "missing") {
    if (!(found.error instanceof Deno.errors.NotFound)) {
      return {
        state: "unwritable",
        text:
          `cannot check socket file ${file.path} (${(found.error as Error).message}): publishers may not ` +
          `reach it either`,
      };
    }
    const dirGone = (() => {
      try {
        return !Deno.statSync(dir).isDirectory;
      } catch {
        return true;
      }
    })();
    const what = dirGone ? `its directory ${dir} was removed` : "it was removed";
    const until = file.inherited
      ? "its socket unit is restarted (systemctl restart adaptor.socket adaptor)"
      : "the adaptor is restarted";
    return {
      state: "removed",
      text: `socket file ${file.path} is gone (${what}): publishers that are connected keep ` +
        `forwarding, new ones cannot connect until ${until}`,
    };
  }
  if (found.state === "replaced") {
    return {
      state: "replaced",
      text: `socket file ${file.path} is no longer ours (another process bound or replaced it): ` +
        `new publishers go there; connected ones keep forwarding here`,
    };
  }
  const why = file.inherited ? undefined : cannotWriteDirectory(dir);
  if (why !== undefined) {
    return {
      state: "unwritable",
      text: `directory ${dir} is no longer writable (${why}): forwarding goes on, but the ` +
        `adaptor will not be able to remove ${file.path} when it stops, nor bind it after a restart`,
    };
  }
  return { state: "ok", text: `socket file ${file.path} is fine again` };
}

/** A running `watchSocketFiles`. */
export interface SocketFileWatch {
  /** How changes are noticed: kernel events plus a slow sweep, or a timer alone. */
  readonly mode: "events" | "timer";
  stop(): Promise<void>;
}

/** How `watchSocketFiles` looks, and how often (ms). */
export interface SocketFileWatchOptions {
  /** With kernel events: the sweep for what sends none to the file (its directory). Default 5000. */
  sweepMs?: number;
  /** Without them (no inotify here): the timer that does all the checking. Default 1000. */
  fallbackMs?: number;
  /** After an event, wait this long before looking, so that `rm -r` is seen whole. Default 50. */
  settleMs?: number;
  /** Use kernel events when possible (default true); false: the timer alone. */
  events?: boolean;
}

/**
 * Calls `onChange` when one of `files` changes state (to a problem, or back to "ok"). libzmq
 * never notices what happens to the file of a bound ipc socket, so without this a removed or
 * stolen socket file would cut off new publishers in silence.
 *
 * Kernel events (inotify on the files, `file_events.ts`) report a removal, a replacement or a
 * chmod at once and cost nothing at rest; a sweep every `sweepMs` catches what sends no event
 * to the file (its directory made unwritable: chmod, `chattr +i`, a read-only remount). Where
 * inotify cannot be used, a timer checks every `fallbackMs`.
 */
export function watchSocketFiles(
  files: readonly OwnedSocketFile[],
  onChange: (file: OwnedSocketFile, state: SocketFileState, text: string) => void,
  options: SocketFileWatchOptions = {},
): SocketFileWatch {
  const { sweepMs = 5000, fallbackMs = 1000, settleMs = 50, events: useEvents = true } = options;
  if (files.length === 0) return { mode: "timer", stop: () => Promise.resolve() };
  const last = new Map<OwnedSocketFile, SocketFileState>(files.map((f) => [f, "ok"]));
  const check = () => {
    for (const file of files) {
      const { state, text } = describeSocketFile(file);
      if (state === last.get(file)) continue;
      last.set(file, state);
      onChange(file, state, text);
    }
  };
  let settling: ReturnType<typeof setTimeout> | undefined;
  const events = useEvents
    ? watchFiles(files.map((f) => f.path), () => {
      settling ??= setTimeout(() => {
        settling = undefined;
        check();
      }, settleMs);
    })
    : undefined;
  const timer = setInterval(check, events ? sweepMs : fallbackMs);
  return {
    mode: events ? "events" : "timer",
    async stop() {
      clearInterval(timer);
      await events?.stop();
      clearTimeout(settling);
    },
  };
}

/**
 * The group id of `nameOrGid`: a number, or a name the C library resolves (getgrnam: /etc/group,
 * LDAP, SSSD, as nsswitch.conf says), else looked up in `groupFile` where there is no glibc.
 * Throws `UsageError` naming `flag` when there is no such group.
 */
export function resolveGroup(nameOrGid: string, flag = "--ipc-group", groupFile = "/etc/group"): number {
  if (/^\d+$/.test(nameOrGid)) return Number(nameOrGid);
  const gid = groupId(nameOrGid);
  if (typeof gid === "number") return gid;
  if (gid === null) throw new UsageError(`${flag} '${nameOrGid}': no such group`);
  let groups: Accounts;
  try {
    groups = readAccounts(groupFile, true);
  } catch (error) {
    throw new UsageError(
      `${flag} '${nameOrGid}': cannot read ${groupFile} (${(error as Error).name}); give a gid`,
    );
  }
  const found = groups.ids.get(nameOrGid);
  if (found !== undefined) return found;
  throw new UsageError(`${flag} '${nameOrGid}': no such group in ${groupFile}`);
}

/** How a socket file got its permissions. */
export type BindProtection = "umask" | "chmod-after-bind";

/**
 * Runs `bind` (which creates the socket file at `path`), then gives the file `mode` and, when
 * given, group `gid`.
 *
 * The race: connecting to a unix socket needs write permission on its file, and it is checked
 * only at connect time, so a process that connects while the file still has the process
 * umask's permissions stays connected after a chmod. We therefore bind under umask 0777 (the
 * file is born with mode 0000: nobody but root may connect), then chown, then chmod. Should
 * libc's umask be out of reach, the file has the umask's mode for the instant between bind and
 * chmod (returns "chmod-after-bind" so the caller can say so).
 * Throws `StartupError` when chown/chmod is refused.
 */
export function bindProtected(
  bind: () => void,
  path: string,
  access: { mode: number; gid?: number },
  what: string,
): BindProtection {
  const previous = setUmask(0o777);
  try {
    bind();
  } finally {
    if (previous !== undefined) setUmask(previous);
  }
  let why = protectSocketFile(path, access);
  if (why === null) {
    why = undefined;
    try {
      if (access.gid !== undefined) Deno.chownSync(path, null, access.gid);
      Deno.chmodSync(path, access.mode);
    } catch (error) {
      why = error instanceof Deno.errors.PermissionDenied
        ? "operation not permitted"
        : (error as Error).message;
    }
  }
  if (why !== undefined) {
    const which = access.gid !== undefined ? `group ${access.gid} and mode` : "mode";
    throw new StartupError(
      `${what}: cannot give ${path} ${which} ${access.mode.toString(8).padStart(4, "0")}: ${why}`,
    );
  }
  return previous === undefined ? "chmod-after-bind" : "umask";
}
