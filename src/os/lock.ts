/**
 * The lock that makes one adaptor per ipc path: an exclusive flock(2) on `PATH.lock`, opened
 * O_NOFOLLOW|O_NONBLOCK and checked (a regular file of ours, one link) and written only through
 * its one descriptor; and `--check`'s look at it without taking it for good.
 */

import { describeUid } from "./accounts.ts";
import {
  cstring,
  ENOENT,
  errno,
  type FileStatus,
  type Libc,
  libc,
  O_CLOEXEC,
  O_CREAT,
  O_NOCTTY,
  O_NOFOLLOW,
  O_NONBLOCK,
  O_RDWR,
  reason,
  REASONS,
  statx,
} from "./libc.ts";

const LOCK_EX = 2;

const LOCK_NB = 4;

const EWOULDBLOCK = 11;

const ENXIO = 6;

const EISDIR = 21;

const ELOOP = 40;

/** An exclusive `flock` held on a file; `release()` removes the file, then unlocks it. */
export interface FileLock {
  readonly path: string;
  /**
   * Replaces the file's content with `text`, through the locked descriptor (never by opening
   * the path again, which could by then name something else). Returns why not, or undefined.
   */
  write(text: string): string | undefined;
  release(): void;
}

/**
 * Why `lockFile` did not get the lock: another process holds it (with the pid it wrote, when it
 * reads as one); the file at the path is not one a lock may be taken on (`unfit`: a symbolic
 * link, a FIFO, a directory, another user's file, a hard link), said as the rest of a sentence
 * that begins with the path; or the kernel refused (`failed`).
 */
export type LockRefusal =
  | { readonly kind: "held"; readonly pid?: number }
  | { readonly kind: "unfit"; readonly why: string }
  | { readonly kind: "failed"; readonly why: string };

/**
 * Takes an exclusive, non-blocking `flock` on `path` (created mode 0600 if missing), held until
 * `release()` or the process ends (the kernel drops it then, whatever killed the process).
 *
 * The path may be in a directory others can write to, so nothing is trusted: it is opened with
 * O_NOFOLLOW (a symbolic link is refused) and O_NONBLOCK (a FIFO cannot block the open), and the
 * open file must be a regular file of this process's user with one link (a hard link would let
 * the pid overwrite another file), or it is refused without a byte written. The lock is checked
 * to be on the file that is at `path` now: a holder that released (removed) it between our open
 * and our flock leaves us a nameless file, and we try again. Returns the refusal instead of a
 * lock when another process holds it or the file is unfit; undefined where libc (or statx, glibc
 * < 2.28) is not there (musl): no lock, nothing enforced.
 */
export function lockFile(path: string): FileLock | LockRefusal | undefined {
  const c = libc();
  if (!c?.statx) return undefined;
  const name = cstring(path);
  const uid = c.geteuid();
  for (let attempt = 0; attempt < 5; attempt++) {
    const fd = c.open(name, O_RDWR | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC, 0o600);
    if (fd === -1) {
      const code = errno(c);
      if (code === ELOOP) return { kind: "unfit", why: "is a symbolic link" };
      if (code === EISDIR) return { kind: "unfit", why: "is a directory" };
      if (code === ENXIO) return { kind: "unfit", why: "is a socket" };
      return { kind: "failed", why: reason(code) };
    }
    const refusal = unfitLock(statx(c, { fd }), uid);
    if (refusal) {
      c.close(fd);
      if (refusal === "gone") continue;
      return { kind: "unfit", why: refusal };
    }
    if (c.flock(fd, LOCK_EX | LOCK_NB) === -1) {
      const code = errno(c);
      const pid = code === EWOULDBLOCK ? readPid(c, fd) : undefined;
      c.close(fd);
      if (code === EWOULDBLOCK) return { kind: "held", pid };
      return { kind: "failed", why: reason(code) };
    }
    if (statx(c, { path })?.id !== statx(c, { fd })?.id) {
      c.close(fd);
      continue;
    }
    let released = false;
    return {
      path,
      write(text) {
        const bytes = new TextEncoder().encode(text);
        if (c.ftruncate(fd, 0n) !== 0) return reason(errno(c));
        // A write that reaches the file-size limit is short; the next one says why (EFBIG).
        for (let at = 0; at < bytes.length;) {
          const n = Number(c.pwrite(fd, bytes.subarray(at), BigInt(bytes.length - at), BigInt(at)));
          if (n <= 0) return n === 0 ? "nothing written" : reason(errno(c));
          at += n;
        }
        return undefined;
      },
      release() {
        if (released) return;
        released = true;
        // While still locked (nobody can take a lock on this file meanwhile), and only if the
        // path still names it.
        if (statx(c, { path })?.id === statx(c, { fd })?.id) c.unlink(name);
        c.close(fd);
      },
    };
  }
  return { kind: "failed", why: "the lock file kept being replaced" };
}

/** Why the open file `status` may not be a lock file of `uid`'s; "gone" when it was removed. */
function unfitLock(status: FileStatus | undefined, uid: number): string | "gone" | undefined {
  if (!status) return "cannot be examined (statx failed)";
  if (status.type !== "file") return `is a ${status.type}, not a regular file`;
  if (status.uid !== uid) return `is owned by ${describeUid(status.uid)}, not by this user (uid ${uid})`;
  if (status.links === 0) return "gone";
  if (status.links > 1) return `has ${status.links} links (a hard link to another file?)`;
  return undefined;
}

/** The pid a holder wrote into the lock file open as `fd`, if it reads as one. */
function readPid(c: Libc, fd: number): number | undefined {
  const buf = new Uint8Array(32);
  const n = Number(c.pread(fd, buf, BigInt(buf.length), 0n));
  const text = n > 0 ? new TextDecoder().decode(buf.subarray(0, n)).trim() : "";
  return /^\d{1,10}$/.test(text) ? Number(text) : undefined;
}

/** What `probeLock` found at a lock file. */
export type LockProbe = "absent" | "free" | "held" | { readonly why: string };

/**
 * Whether another process holds the `lockFile` lock on `path`, asked without creating or
 * removing anything (`--check`): an existing file is locked and unlocked at once. Undefined
 * where libc cannot be opened.
 */
export function probeLock(path: string): LockProbe | undefined {
  const c = libc();
  if (!c) return undefined;
  const fd = c.open(new TextEncoder().encode(path + "\0"), O_RDWR | O_NOFOLLOW | O_CLOEXEC, 0);
  if (fd === -1) {
    const code = errno(c);
    return code === ENOENT ? "absent" : { why: REASONS[code] ?? `errno ${code}` };
  }
  try {
    if (c.flock(fd, LOCK_EX | LOCK_NB) === 0) return "free"; // released by the close below
    const code = errno(c);
    return code === EWOULDBLOCK ? "held" : { why: REASONS[code] ?? `errno ${code}` };
  } finally {
    c.close(fd);
  }
}
