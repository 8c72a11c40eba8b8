/**
 * access(2), through FFI on the C library: may this process write into a directory, as the
 * kernel decides it. Deno has no such call, and mode bits alone do not tell (root, read-only
 * mounts, immutable directories). Used to notice that the ipc directory turned unwritable.
 */

const W_OK = 2;
const X_OK = 1;
const EACCES = 13;
const EPERM = 1;
const EROFS = 30;
const ENOENT = 2;

const REASONS: Readonly<Record<number, string>> = {
  [EACCES]: "permission denied",
  [EPERM]: "operation not permitted (immutable?)",
  [EROFS]: "read-only file system",
  [ENOENT]: "no such file or directory",
};

type Libc = Deno.DynamicLibrary<{
  access: { parameters: ["buffer", "i32"]; result: "i32" };
  __errno_location: { parameters: []; result: "pointer" };
}>["symbols"];

let libc: Libc | null | undefined;

function load(): Libc | null {
  if (libc !== undefined) return libc;
  try {
    libc = Deno.dlopen("libc.so.6", {
      access: { parameters: ["buffer", "i32"], result: "i32" },
      __errno_location: { parameters: [], result: "pointer" },
    }).symbols;
  } catch {
    libc = null; // not glibc: the check is skipped
  }
  return libc;
}

/**
 * Whether this process may create and remove entries in `dir`: undefined if it may (or if
 * the C library cannot be asked), else the kernel's reason.
 */
export function cannotWriteDirectory(dir: string): string | undefined {
  const c = load();
  if (!c) return undefined;
  const path = new TextEncoder().encode(dir + "\0");
  if (c.access(path, W_OK | X_OK) === 0) return undefined;
  const errno = new Deno.UnsafePointerView(c.__errno_location()!).getInt32();
  return REASONS[errno] ?? `errno ${errno}`;
}
