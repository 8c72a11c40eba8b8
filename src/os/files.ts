/**
 * File permissions as the kernel decides them: access(2) on a directory (root, read-only mounts
 * and immutable files make the mode bits lie), umask(2) around a bind (`Deno.umask` needs all of
 * --allow-sys), and a socket file's group and mode set through one O_PATH descriptor.
 */

import { describeUid } from "./accounts.ts";
import {
  AT_EMPTY_PATH,
  cstring,
  ENOENT,
  errno,
  libc,
  O_CLOEXEC,
  O_NOFOLLOW,
  O_PATH,
  reason,
  statx,
} from "./libc.ts";

const W_OK = 2;

const X_OK = 1;

/**
 * Whether this process may create and remove entries in `dir`: undefined if it may (or if
 * the C library cannot be asked), else the kernel's reason.
 */
export function cannotWriteDirectory(dir: string): string | undefined {
  const c = libc();
  if (!c) return undefined;
  const path = new TextEncoder().encode(dir + "\0");
  if (c.access(path, W_OK | X_OK) === 0) return undefined;
  return reason(errno(c));
}

/**
 * Sets the process's file-creation mask and returns the previous one; undefined (nothing set)
 * where libc cannot be opened. Process-wide: restore it right after use.
 */
export function setUmask(mask: number): number | undefined {
  return libc()?.umask(mask);
}

/**
 * Gives the socket file just bound at `path` group `gid` (when given) and `mode`, without
 * following the path twice: it is opened once (O_PATH|O_NOFOLLOW), must be a socket of this
 * process's user, and is changed through that descriptor (fchownat on it; chmod on its
 * /proc/self/fd entry, which names the inode itself). So a file swapped in by another user who
 * may write to the directory (a symbolic link to /etc/shadow, say) is refused, never changed.
 * Returns why not, or undefined; null where libc cannot be opened (the caller does without).
 */
export function protectSocketFile(
  path: string,
  access: { mode: number; gid?: number },
): string | undefined | null {
  const c = libc();
  if (!c?.statx) return null;
  const fd = c.open(cstring(path), O_PATH | O_NOFOLLOW | O_CLOEXEC, 0);
  if (fd === -1) return reason(errno(c));
  try {
    const status = statx(c, { fd });
    const uid = c.geteuid();
    if (status?.type !== "socket" || status.uid !== uid) {
      return `it was replaced right after the bind (now ${
        status ? `a ${status.type} of ${describeUid(status.uid)}` : "unknown"
      }); refusing to change it`;
    }
    if (
      access.gid !== undefined && c.fchownat(fd, cstring(""), 0xffff_ffff, access.gid, AT_EMPTY_PATH) !== 0
    ) {
      return reason(errno(c));
    }
    if (c.chmod(cstring(`/proc/self/fd/${fd}`), access.mode) === 0) return undefined;
    const code = errno(c);
    // Without /proc (a bare chroot): by the path, if it still names this file.
    if (code !== ENOENT || statx(c, { path })?.id !== status.id) return reason(code);
    return c.chmod(cstring(path), access.mode) === 0 ? undefined : reason(errno(c));
  } finally {
    c.close(fd);
  }
}
