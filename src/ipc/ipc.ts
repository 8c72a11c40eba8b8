/**
 * Guarding `ipc://` socket files.
 *
 * libzmq's ipc bind unlinks whatever file is at the path and binds anew, so a second adaptor
 * started on the same path silently takes the gateway's traffic from the first. Before a bind
 * we connect to an existing socket file: if something answers, the path is live and we refuse;
 * if the connection is refused, the file is stale (its process died) and binding over it is
 * right. After a bind we remember the file's identity so that shutdown removes only our own
 * file, never one that another process has bound since.
 *
 * The check and the bind are two steps, so two adaptors started at the same moment could both
 * find the path free. `IpcGuard` closes that gap: it takes an exclusive lock on `PATH.lock`
 * before the check and holds it until the adaptor has stopped and removed its socket file.
 *
 * Other local users may write to the directory (the default is /tmp), so the lock file is
 * trusted only when it is a regular file of ours (`libc.ts lockFile`), a live socket is named by
 * who serves it (SO_PEERCRED), and a directory anyone may write to is warned about.
 */

import { dirname } from "node:path";
import { StartupError, UsageError } from "../errors.ts";
import { watchFiles } from "./file_events.ts";
import { describeUid, effectiveUid, groupId, processName } from "../os/accounts.ts";
import { cannotWriteDirectory, protectSocketFile, setUmask } from "../os/files.ts";
import { type FileLock, lockFile } from "../os/lock.ts";
import { probeUnixSocket, type UnixSocketProbe } from "../os/sockets.ts";
import { type Accounts, readAccounts } from "../os/accounts.ts";

/** The identity of a socket file we created. */
export interface OwnedSocketFile {
  readonly path: string;
  readonly dev: number;
  readonly ino: number;
  /** Birth time in ms, where the file system records it. */
  readonly born?: number;
}

/** What was found at an ipc path before binding. */
export type PathState = "absent" | "stale";

/**
 * Checks that `path` can be bound without taking it from a live process.
 * Throws `StartupError` (naming `what`, e.g. "-b/--bind 'ipc:///tmp/q'") when it cannot.
 */
export async function checkIpcPath(path: string, what: string): Promise<PathState> {
  try {
    return await inspect(path, what);
  } catch (error) {
    if (error instanceof StartupError) throw error;
    throw new StartupError(`${what}: cannot check ${path}: ${(error as Error).message}`);
  }
}

async function inspect(path: string, what: string): Promise<PathState> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.lstat(path);
  } catch (error) {
    // Deno's sandbox hides some trees (/proc, /sys) even from --allow-read; nothing of ours
    // can live there, and libzmq's bind will report the real reason.
    if (error instanceof Deno.errors.NotCapable) return "absent";
    if (!(error instanceof Deno.errors.NotFound)) throw error;
    await checkDirectory(path, what);
    return "absent";
  }
  if (!info.isSocket) {
    throw new StartupError(`${what}: ${path} exists and is not a socket; refusing to replace it`);
  }
  const probe = probeUnixSocket(path) ?? await connectUnix(path);
  switch (probe.state) {
    case "refused":
      return "stale";
    case "absent":
      return "absent"; // removed since the lstat
    case "denied":
      throw new StartupError(
        `${what}: ${path} (owned by ${describeUid(info.uid ?? -1)}) cannot be checked: permission denied`,
      );
    case "failed":
      throw new Error(probe.why);
  }
  throw new StartupError(
    `${what}: another process${describeServer(probe)} is serving ${path}; refusing to take its traffic ` +
      `(stop it first)${squatted(probe)}`,
  );
}

/** " (uid 65534 (nobody), pid 4242 python3)": who serves a socket, as far as the kernel said. */
function describeServer(probe: { pid?: number; uid?: number }): string {
  const parts = [
    ...(probe.uid !== undefined ? [describeUid(probe.uid)] : []),
    ...(probe.pid !== undefined ? [`pid ${probe.pid}${withName(processName(probe.pid))}`] : []),
  ];
  return parts.length > 0 ? ` (${parts.join(", ")})` : "";
}

const withName = (name: string | undefined) => name ? ` ${JSON.stringify(name).slice(1, -1)}` : "";

/**
 * What to add when the socket is served by a user other than the adaptor's: gateway workers that
 * reconnect go to it. The path is not taken back, even by root: the workers already connected to
 * that process stay with it whatever the adaptor binds, so a takeover would look healthy while
 * events still leak; refusing makes the operator look.
 */
function squatted(probe: { uid?: number }): string {
  const own = effectiveUid();
  if (probe.uid === undefined || own === undefined || probe.uid === own) return "";
  return `; it is not this adaptor's user, and gateway workers connected to it publish to it: stop that ` +
    `process, and give the socket a directory of its own that only the adaptor may write (e.g. ` +
    `/run/api-gateway, systemd RuntimeDirectory=)`;
}

/** The live-path check without libc (musl): a connection refused means stale. */
async function connectUnix(path: string): Promise<UnixSocketProbe> {
  try {
    const conn = await Deno.connect({ transport: "unix", path });
    conn.close();
    return { state: "served" };
  } catch (error) {
    if (error instanceof Deno.errors.ConnectionRefused) return { state: "refused" };
    if (error instanceof Deno.errors.PermissionDenied) return { state: "denied" };
    if (error instanceof Deno.errors.NotFound) return { state: "absent" };
    throw error;
  }
}

/**
 * Why the directory of the socket file at `path` lets other users take the path, or undefined:
 * a directory every user may write to (even sticky, like /tmp: whoever binds or makes the lock
 * file first while the adaptor is down owns it), or one another user owns.
 */
export function directoryExposure(path: string): string | undefined {
  const dir = dirname(path);
  let info: Deno.FileInfo;
  try {
    info = Deno.statSync(dir);
  } catch {
    return undefined; // the checks that follow say what is wrong with it
  }
  const own = effectiveUid();
  const advice = `give the socket a directory of its own that only the adaptor may write (e.g. ` +
    `/run/api-gateway, systemd RuntimeDirectory=)`;
  if (info.mode !== null && (info.mode & 0o002) !== 0) {
    const mode = (info.mode & 0o7777).toString(8).padStart(4, "0");
    return `directory ${dir} (mode ${mode}) is writable by every user: any of them can bind ${path} or ` +
      `make its lock file while the adaptor is not running, and gateway workers would then publish to ` +
      `their socket, or the adaptor could not start; ${advice}`;
  }
  if (info.uid !== null && own !== undefined && info.uid !== 0 && info.uid !== own) {
    return `directory ${dir} is owned by ${describeUid(info.uid)}, who can replace ${path} at any time; ` +
      advice;
  }
  return undefined;
}

async function checkDirectory(path: string, what: string): Promise<void> {
  const dir = dirname(path);
  try {
    const info = await Deno.stat(dir);
    if (!info.isDirectory) throw new StartupError(`${what}: ${dir} is not a directory`);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new StartupError(`${what}: directory ${dir} does not exist`);
    }
    throw error;
  }
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
    return {
      state: "removed",
      text: `socket file ${file.path} is gone (${what}): publishers that are connected keep ` +
        `forwarding, new ones cannot connect until the adaptor is restarted`,
    };
  }
  if (found.state === "replaced") {
    return {
      state: "replaced",
      text: `socket file ${file.path} is no longer ours (another process bound or replaced it): ` +
        `new publishers go there; connected ones keep forwarding here`,
    };
  }
  const why = cannotWriteDirectory(dir);
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

/** The lock file that makes one adaptor per ipc path: `PATH.lock`, beside the socket file. */
export function lockPathOf(path: string): string {
  return `${path}.lock`;
}

/** An ipc path the adaptor is about to bind, and how to name it in messages. */
export interface GuardedPath {
  readonly path: string;
  /** e.g. "-b/--bind 'ipc:///tmp/q'". */
  readonly what: string;
}

/**
 * The ipc guard of one adaptor: the locks on its ipc paths, the socket files it bound (with
 * their mode and group), and the watch on them. Disposing it (after the sockets are closed)
 * stops the watch, removes the files that are still ours, then releases the locks.
 */
export class IpcGuard implements AsyncDisposable {
  readonly #locks: FileLock[] = [];
  readonly #owned: OwnedSocketFile[] = [];
  #watch: SocketFileWatch | undefined;
  readonly #onRemoveFailure: (file: OwnedSocketFile, why: string) => void;
  readonly #onWarning: (text: string) => void;
  readonly #pending: string[] = [];

  private constructor(
    onRemoveFailure: (file: OwnedSocketFile, why: string) => void,
    onWarning: (text: string) => void,
  ) {
    this.#onRemoveFailure = onRemoveFailure;
    this.#onWarning = onWarning;
  }

  /**
   * Locks each path, then checks that none is live (`checkIpcPath`). Throws `StartupError`
   * (with every lock taken so far released) when another adaptor holds a lock, the lock file is
   * not one to trust, or another process serves a path; `onStale` hears of stale files that will
   * be bound over, `onWarning` of a directory others may write to (`directoryExposure`) and of a
   * pid that could not be written.
   */
  static async acquire(
    paths: readonly GuardedPath[],
    options: {
      onStale?: (path: string) => void;
      onRemoveFailure?: (file: OwnedSocketFile, why: string) => void;
      onWarning?: (text: string) => void;
    } = {},
  ): Promise<IpcGuard> {
    const guard = new IpcGuard(options.onRemoveFailure ?? (() => {}), options.onWarning ?? (() => {}));
    try {
      for (const { path, what } of paths) {
        await guard.#lock(path, what);
        if ((await checkIpcPath(path, what)) === "stale") options.onStale?.(path);
      }
      // Said once the start goes on: a refusal stays one line.
      for (const { path, what } of paths) {
        const exposure = directoryExposure(path);
        if (exposure) guard.#pending.push(`${what}: ${exposure}`);
      }
      for (const warning of guard.#pending.splice(0)) guard.#onWarning(warning);
    } catch (error) {
      await guard[Symbol.asyncDispose]();
      throw error;
    }
    return guard;
  }

  async #lock(path: string, what: string): Promise<void> {
    const lockPath = lockPathOf(path);
    const lock = lockFile(lockPath);
    if (lock === undefined) return; // no libc here (musl): the live-path check alone
    if ("release" in lock) {
      this.#locks.push(lock);
      // The pid is for the operator's benefit only; a failed write (ulimit -f) is said, not fatal.
      const why = lock.write(`${Deno.pid}\n`);
      if (why !== undefined) this.#pending.push(`cannot write the pid into lock file ${lockPath}: ${why}`);
      return;
    }
    if (lock.kind === "held") {
      const holder = lock.pid !== undefined ? `pid ${lock.pid}, ` : "";
      throw new StartupError(
        `${what}: another process is serving ${path} (${holder}holding ${lockPath}); refusing to take its ` +
          `traffic (stop it first)`,
      );
    }
    if (lock.kind === "unfit") {
      throw new StartupError(
        `${what}: lock file ${lockPath} ${lock.why}; refusing it (remove it if nothing of yours made it, ` +
          `and give the socket a directory of its own)`,
      );
    }
    await checkIpcPath(path, what); // a missing directory, say, is better said by the check
    throw new StartupError(`${what}: cannot lock ${lockPath}: ${lock.why}`);
  }

  /** The socket files bound so far. */
  get files(): readonly OwnedSocketFile[] {
    return this.#owned;
  }

  /**
   * Binds through `bind` under `bindProtected` and records the file as ours. Returns how the
   * file got its permissions.
   */
  bind(bind: () => void, path: string, access: { mode: number; gid?: number }, what: string): BindProtection {
    return bindProtected(
      () => {
        bind();
        const file = ownSocketFile(path);
        if (file) this.#owned.push(file);
      },
      path,
      access,
      what,
    );
  }

  /** Starts watching the files bound (`watchSocketFiles`); call once, after every bind. */
  watch(onChange: (file: OwnedSocketFile, state: SocketFileState, text: string) => void): void {
    this.#watch ??= watchSocketFiles(this.#owned, onChange);
  }

  /**
   * Removes the socket files that are still ours and releases the locks, now: the last part of
   * the disposal, and what a stop that overran its deadline does before the process exits (the
   * sockets may still be bound then; nobody new can reach them by name).
   */
  releaseFiles(): void {
    for (const file of this.#owned.splice(0)) {
      removeOwnedFile(file, (why) => this.#onRemoveFailure(file, why));
    }
    for (const lock of this.#locks.splice(0).reverse()) lock.release();
  }

  /** Stops watching the socket files (a stop begins: their news no longer matters). */
  unwatch(): Promise<void> {
    return this.#watch?.stop() ?? Promise.resolve();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.unwatch();
    this.releaseFiles();
  }
}
