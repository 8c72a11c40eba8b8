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

import { StartupError } from "../errors.ts";
import { type FileLock, lockFile } from "../os/lock.ts";
import { checkIpcPath, directoryExposure } from "./path_check.ts";
import {
  bindProtected,
  type BindProtection,
  type OwnedSocketFile,
  ownSocketFile,
  removeOwnedFile,
  type SocketFileState,
  type SocketFileWatch,
  watchSocketFiles,
} from "./socket_file.ts";

/** The lock file that makes one adaptor per ipc path: `PATH.lock`, beside the socket file. */
export function lockPathOf(path: string): string {
  return `${path}.lock`;
}

/** An ipc path the adaptor is about to bind, and how to name it in messages. */
export interface GuardedPath {
  readonly path: string;
  /** e.g. "-b/--bind 'ipc:///tmp/q'". */
  readonly what: string;
  /**
   * The socket was passed by systemd (socket activation): it is served already, by the socket
   * unit, and is neither checked for a live server nor bound, owned or removed by us.
   */
  readonly inherited?: boolean;
}

/**
 * The ipc guard of one adaptor: the locks on its ipc paths, the socket files it bound (with
 * their mode and group), and the watch on them. Disposing it (after the sockets are closed)
 * stops the watch, removes the files that are still ours, then releases the locks.
 */
export class IpcGuard implements AsyncDisposable {
  readonly #locks: FileLock[] = [];
  readonly #owned: OwnedSocketFile[] = [];
  /** The socket files systemd's socket unit made (socket activation): watched, not removed. */
  readonly #adopted: OwnedSocketFile[] = [];
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
      for (const { path, what, inherited } of paths) {
        await guard.#lock(path, what);
        if (!inherited && (await checkIpcPath(path, what)) === "stale") options.onStale?.(path);
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

  /** The socket files bound so far, and those adopted. */
  get files(): readonly OwnedSocketFile[] {
    return [...this.#owned, ...this.#adopted];
  }

  /** Records the socket file of a socket systemd passed, to watch it (it stays at stop). */
  adopt(path: string): void {
    const file = ownSocketFile(path);
    if (file) this.#adopted.push({ ...file, inherited: true });
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
    this.#watch ??= watchSocketFiles(this.files, onChange);
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
