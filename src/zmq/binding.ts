/**
 * The libzmq binding: its symbols through Deno FFI, on the very library that the `zeromq` npm package ships.
 *
 * Why not zeromq.js sockets: under Deno 2.9 their JS-level waits are unreliable (Deno's
 * libuv shim fires `uv_poll` once, zeromq.js expects it to keep firing; see
 * `tests/deno_quirk_test.ts`). Here every wait is a blocking libzmq call made with
 * `nonblocking: true`, so it runs on a thread of Deno's blocking pool and resolves a promise:
 * no polling timers, no CPU at rest, and the forwarding loop (`zmq_proxy_steerable`) is C.
 *
 * The addon exports libzmq's `zmq_*` symbols. We pick the prebuilt addon the way zeromq's
 * loader would (its manifest, this libc, the highest Node-API level that loads) and `dlopen` it
 * ourselves: zeromq's JavaScript never runs. Inside a `deno compile` binary the same path is in
 * the embedded file system, which `Deno.dlopen` reads from (Deno ≥ 2.3 extracts the library);
 * should that fail, zeromq's own loader loads the addon and we `dlopen` the file it opened.
 */

import Module, { createRequire } from "node:module";

const symbols = {
  zmq_version: { parameters: ["buffer", "buffer", "buffer"], result: "void" },
  zmq_errno: { parameters: [], result: "i32" },
  zmq_strerror: { parameters: ["i32"], result: "pointer" },
  zmq_ctx_new: { parameters: [], result: "pointer" },
  zmq_ctx_set: { parameters: ["pointer", "i32", "i32"], result: "i32" },
  zmq_ctx_get: { parameters: ["pointer", "i32"], result: "i32" },
  zmq_ctx_shutdown: { parameters: ["pointer"], result: "i32" },
  // Terminating waits for every socket's linger: never on the JS thread.
  zmq_ctx_term: { parameters: ["pointer"], result: "i32", nonblocking: true },
  zmq_socket: { parameters: ["pointer", "i32"], result: "pointer" },
  zmq_close: { parameters: ["pointer"], result: "i32" },
  zmq_bind: { parameters: ["pointer", "buffer"], result: "i32" },
  zmq_unbind: { parameters: ["pointer", "buffer"], result: "i32" },
  zmq_disconnect: { parameters: ["pointer", "buffer"], result: "i32" },
  zmq_connect: { parameters: ["pointer", "buffer"], result: "i32" },
  zmq_setsockopt: { parameters: ["pointer", "i32", "buffer", "usize"], result: "i32" },
  zmq_getsockopt: { parameters: ["pointer", "i32", "buffer", "buffer"], result: "i32" },
  zmq_send: { parameters: ["pointer", "buffer", "usize", "i32"], result: "i32" },
  zmq_recv: { parameters: ["pointer", "buffer", "usize", "i32"], result: "i32" },
  zmq_send_async: {
    name: "zmq_send",
    parameters: ["pointer", "buffer", "usize", "i32"],
    result: "i32",
    nonblocking: true,
  },
  zmq_msg_init: { parameters: ["buffer"], result: "i32" },
  zmq_msg_close: { parameters: ["buffer"], result: "i32" },
  zmq_msg_data: { parameters: ["buffer"], result: "pointer" },
  zmq_msg_size: { parameters: ["buffer"], result: "usize" },
  zmq_msg_more: { parameters: ["buffer"], result: "i32" },
  zmq_msg_recv: { parameters: ["buffer", "pointer", "i32"], result: "i32" },
  zmq_msg_recv_async: {
    name: "zmq_msg_recv",
    parameters: ["buffer", "pointer", "i32"],
    result: "i32",
    nonblocking: true,
  },
  zmq_socket_monitor: { parameters: ["pointer", "buffer", "i32"], result: "i32" },
  // Draft API (present in zeromq's prebuilt addon): v2 events carry the peer's address.
  zmq_socket_monitor_versioned: {
    parameters: ["pointer", "buffer", "u64", "i32", "i32"],
    result: "i32",
    optional: true,
  },
  zmq_has: { parameters: ["buffer"], result: "i32" },
  zmq_curve_keypair: { parameters: ["buffer", "buffer"], result: "i32" },
  zmq_curve_public: { parameters: ["buffer", "buffer"], result: "i32" },
  zmq_z85_encode: { parameters: ["buffer", "buffer", "usize"], result: "pointer" },
  zmq_z85_decode: { parameters: ["buffer", "buffer"], result: "pointer" },
  zmq_proxy_steerable: {
    parameters: ["pointer", "pointer", "pointer", "pointer"],
    result: "i32",
    nonblocking: true,
  },
} as const satisfies Deno.ForeignLibraryInterface;

type Lib = Deno.DynamicLibrary<typeof symbols>["symbols"];

/** A libzmq error: `code` is libzmq's errno, `message` its strerror text. */
export class ZmqError extends Error {
  constructor(readonly code: number, message: string) {
    super(message);
    this.name = "ZmqError";
  }
}

let lib: Lib | undefined;
let libPath: string | undefined;

/** The path of the libzmq-carrying addon this process loaded (for diagnostics and tests). */
export function addonPath(): string {
  load();
  return libPath!;
}

/**
 * Which of the zeromq package's prebuilt addons runs here, e.g. "glibc-127-Release": the first of
 * its manifest's builds for this platform and C library that loads (see `prebuiltAddons`).
 */
export function addonBuild(): string {
  return addonPath().split("/").at(-2) ?? "unknown";
}

/**
 * The zeromq package's prebuilt addons that suit this platform, best first, as its loader
 * (cmake-ts) ranks them: the package's `build/manifest.json` lists each build's os, arch, libc
 * and Node-API level; the highest level goes first. Empty when the package's files cannot be read.
 */
export function prebuiltAddons(): string[] {
  let buildDir: string;
  let manifest: Record<string, string>;
  try {
    // resolve() finds the package's main file (lib/index.js) without running it.
    const main = createRequire(import.meta.url).resolve("zeromq");
    buildDir = `${main.slice(0, main.lastIndexOf("/lib/"))}/build`;
    manifest = JSON.parse(Deno.readTextFileSync(`${buildDir}/manifest.json`));
  } catch {
    return [];
  }
  const here = { os: NODE_OS[Deno.build.os], arch: NODE_ARCH[Deno.build.arch], libc: libcFamily() };
  const builds: { abi: number; path: string }[] = [];
  for (const [key, path] of Object.entries(manifest)) {
    let build: { os?: string; arch?: string; libc?: string; abi?: number };
    try {
      build = JSON.parse(key);
    } catch {
      continue;
    }
    if (build.os !== here.os || build.arch !== here.arch || build.libc !== here.libc) continue;
    builds.push({ abi: build.abi ?? 0, path: `${buildDir}/${path}` });
  }
  return builds.sort((a, b) => b.abi - a.abi).map((b) => b.path);
}

// Deno's names for the platform, in Node's words (the manifest's).
const NODE_OS: Partial<Record<string, string>> = { linux: "linux", darwin: "darwin", windows: "win32" };
const NODE_ARCH: Partial<Record<string, string>> = { x86_64: "x64", aarch64: "arm64" };

// cmake-ts's rule: Linux is musl where /etc/alpine-release exists, glibc elsewhere.
function libcFamily(): string {
  if (Deno.build.os !== "linux") return Deno.build.os === "darwin" ? "libc" : "msvc";
  try {
    Deno.statSync("/etc/alpine-release");
    return "musl";
  } catch {
    return "glibc";
  }
}

/** The addon files Node's loader opened, recorded by `watchAddonLoads`. */
const addonLoads: string[] = [];

// Records which `.node` file zeromq's loader picks (prebuild by libc and Node-API version).
function watchAddonLoads(): () => void {
  // deno-lint-ignore no-explicit-any
  const extensions = (Module as any)._extensions as Record<string, (m: unknown, f: string) => unknown>;
  const original = extensions[".node"];
  extensions[".node"] = function (this: unknown, module: unknown, filename: string) {
    addonLoads.push(filename);
    return original.call(this, module, filename);
  };
  return () => void (extensions[".node"] = original);
}

/** libzmq opened from an addon file, or why none could be. */
export type Opened = { lib: Lib; path: string } | { problem: unknown };

// The first of `paths` that dlopen accepts (a build that needs a newer glibc fails), or the last
// problem met.
function openFirst(paths: string[]): Opened {
  let problem: unknown = new Error("the zeromq native addon did not load");
  for (const path of paths) {
    try {
      return { lib: Deno.dlopen(path, symbols).symbols, path };
    } catch (error) {
      problem = error;
    }
  }
  return { problem };
}

/**
 * The second route to libzmq: zeromq's own loader loads the addon (inside a compiled binary,
 * that is what extracts it), then we open the file it loaded, which returns the same library.
 * Runs zeromq's JavaScript and Node-API module.
 */
export function openThroughZeromq(): Opened {
  const unwatch = watchAddonLoads();
  try {
    createRequire(import.meta.url)("zeromq");
  } catch (problem) {
    return { problem };
  } finally {
    unwatch();
  }
  return openFirst([...addonLoads.filter((f) => f.includes("zeromq")).reverse()]);
}

/**
 * Opens libzmq: straight from the prebuilt addon files where it can, so that only libzmq runs
 * (zeromq's JavaScript and Node-API module stay unloaded: ~1 MiB less RSS); else, e.g. inside a
 * compiled binary, whose embedded files dlopen cannot reach, through zeromq's loader.
 */
function load(): Lib {
  if (lib) return lib;
  let opened = openFirst(prebuiltAddons());
  if ("problem" in opened) opened = openThroughZeromq();
  if ("problem" in opened) throw opened.problem;
  lib = opened.lib;
  libPath = opened.path;
  return lib;
}

/** The loaded library, loading it on first use. */
export function zmq(): Lib {
  return lib ?? load();
}

const encoder = new TextEncoder();

/** A NUL-terminated C string. */
export function cstr(text: string): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(text.length * 3 + 1);
  const { written } = encoder.encodeInto(text, bytes);
  return bytes.subarray(0, written + 1) as Uint8Array<ArrayBuffer>;
}

/** The current thread's last libzmq error as a `ZmqError`. */
export function lastError(): ZmqError {
  const z = zmq();
  const code = z.zmq_errno();
  return errorFor(code);
}

/** A `ZmqError` for errno `code`. */
export function errorFor(code: number): ZmqError {
  const ptr = zmq().zmq_strerror(code);
  const text = ptr ? Deno.UnsafePointerView.getCString(ptr) : `errno ${code}`;
  return new ZmqError(code, text);
}

/** Throws the last libzmq error when `rc` is -1. */
export function check(rc: number): void {
  if (rc === -1) throw lastError();
}

/** libzmq's version, e.g. "4.3.5". */
export function zmqVersion(): string {
  const [a, b, c] = [new Int32Array(1), new Int32Array(1), new Int32Array(1)];
  zmq().zmq_version(a, b, c);
  return `${a[0]}.${b[0]}.${c[0]}`;
}

/** Whether this libzmq was built with `capability` ("curve", "ipc", "draft", …). */
export function hasCapability(capability: string): boolean {
  return zmq().zmq_has(cstr(capability)) === 1;
}
