/**
 * Before an ipc path is bound: is a process serving it (named by uid and pid, SO_PEERCRED), is
 * the file stale, and may other users write to its directory.
 */

import { dirname } from "node:path";
import { StartupError } from "../errors.ts";
import { describeUid, effectiveUid, processName } from "../os/accounts.ts";
import { probeUnixSocket, type UnixSocketProbe } from "../os/sockets.ts";

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
