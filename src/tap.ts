/**
 * `adaptor tap ENDPOINT [PREFIX…]`: a live view of what a running adaptor's XPUB (or any ZeroMQ
 * PUB/XPUB) publishes, without restarting it with `-d`. The tap is an ordinary SUB, subscribed
 * to the prefixes given (everything by default), so the adaptor treats it as any tracking
 * service: its subscriptions flow upstream as theirs do, and a tap that falls `--sndhwm`
 * behind loses messages, never slows the others.
 *
 * Each event is printed on one line, made safe for a terminal as `-d` does (`sanitize.ts`);
 * `--json` prints JSON lines with a timestamp, the frame count and the frames. It ends after
 * `--count` events, on SIGINT/SIGTERM (exit 0), or with one line (exit 1) when no connection
 * is made within `--connect-timeout` or the server refuses it (a CURVE handshake that fails,
 * seen by a socket monitor).
 */

import type { TapRequest } from "./config/cli.ts";
import { isCurveKey, readCertificateFile, readSecretCertificate } from "./security/cert.ts";
import { findServerCertificate } from "./security/curve.ts";
import { StartupError, UsageError } from "./errors.ts";
import { writeStderr } from "./ops/log.ts";
import { monitorSocket, type SocketEvent } from "./zmq/monitor.ts";
import { sanitize } from "./ops/sanitize.ts";
import { shieldWaits, type SignalListeners } from "./os/signals.ts";
import { explain } from "./zmq/socket_options.ts";
import { PROGRAM } from "./version.ts";
import { ZmqError } from "./zmq/binding.ts";
import { ZMQ_LINGER, ZMQ_SUB, ZMQ_SUBSCRIBE } from "./zmq/constants.ts";
import { PROTOCOL_ERRORS } from "./zmq/monitor.ts";
import { Context, type Frames } from "./zmq/socket.ts";
import { curveKeypair } from "./zmq/z85.ts";

/** A checked tap request. */
export interface TapOptions {
  readonly endpoint: string;
  readonly prefixes: readonly string[];
  /** Events to print before exiting; undefined: until stopped. */
  readonly count?: number;
  readonly json: boolean;
  readonly curve?: { readonly serverKey: string; readonly publicKey: string; readonly secretKey: string };
  /** How long to wait for the first handshake, in ms. */
  readonly connectTimeoutMs: number;
}

export const DEFAULT_CONNECT_TIMEOUT_MS = 5000;

/** Characters of a frame printed; the rest is summed up as its size. */
export const TAP_MAX_CHARACTERS = 4096;

/**
 * Checks `request` and reads its certificates. Throws `UsageError` naming the flag. With a
 * server key but no `--curve-cert`, the tap makes a key pair of its own (admitted only by a
 * server without `--curve-clients`).
 */
export function tapOptions(request: TapRequest): TapOptions {
  const bad = (text: string) => new UsageError(`tap: ${text}`);
  const endpoint = request.endpoint.trim();
  const match = /^(tcp|ipc):\/\/(.+)$/.exec(endpoint);
  if (!match) {
    throw bad(`ENDPOINT '${endpoint}': expected tcp://HOST:PORT or ipc:///PATH (the adaptor's -p)`);
  }
  const count = request.count === undefined ? undefined : wholeNumber("--count", request.count, 1);
  const connectTimeoutMs = request.connectTimeout === undefined
    ? DEFAULT_CONNECT_TIMEOUT_MS
    : wholeNumber("--connect-timeout", request.connectTimeout, 1);
  if (request.curveServerKey !== undefined && request.curveServers !== undefined) {
    throw bad("--curve-server-key and --curve-servers: give one of them");
  }
  let serverKey: string | undefined;
  if (request.curveServerKey !== undefined) {
    serverKey = request.curveServerKey.trim();
    if (!isCurveKey(serverKey)) {
      throw bad(`--curve-server-key '${serverKey}': expected a CURVE public key, 40 characters of Z85`);
    }
  } else if (request.curveServers !== undefined) {
    if (match[1] !== "tcp") throw bad(`--curve-servers: ENDPOINT '${endpoint}' is not tcp`);
    serverKey = serverKeyFrom(request.curveServers, endpoint);
  }
  if (request.curveCert !== undefined && serverKey === undefined) {
    throw bad("--curve-cert: needs the server's key too (--curve-server-key or --curve-servers)");
  }
  let curve: TapOptions["curve"];
  if (serverKey !== undefined) {
    const own = request.curveCert !== undefined
      ? readSecretCertificate(request.curveCert, "tap: --curve-cert")
      : curveKeypair();
    curve = { serverKey, publicKey: own.publicKey, secretKey: own.secretKey };
  }
  return {
    endpoint,
    prefixes: request.prefixes.length > 0 ? request.prefixes : [""],
    ...(count !== undefined ? { count } : {}),
    json: request.json === true,
    ...(curve ? { curve } : {}),
    connectTimeoutMs,
  };
}

function wholeNumber(flag: string, text: string, min: number): number {
  if (!/^\s*\d+\s*$/.test(text) || Number(text) < min) {
    throw new UsageError(`tap: ${flag} '${text}': expected a whole number of at least ${min}`);
  }
  return Number(text);
}

/** The server's public key for tcp `endpoint` from a `--curve-servers` directory. */
function serverKeyFrom(dir: string, endpoint: string): string {
  const { file, candidates } = findServerCertificate(dir, endpoint);
  if (!file) {
    throw new UsageError(
      `tap: --curve-servers '${dir}': no certificate for ${endpoint} (looked for ${
        candidates.join(" and ")
      })`,
    );
  }
  return readCertificateFile(file, `tap: --curve-servers '${dir}': ${file}`).publicKey;
}

const decoder = new TextDecoder();

/** A frame as safe text: at most `TAP_MAX_CHARACTERS` characters, then its size. */
export function frameText(frame: Uint8Array): string {
  const head = frame.subarray(0, 4 * TAP_MAX_CHARACTERS);
  const text = decoder.decode(head);
  if (text.length <= TAP_MAX_CHARACTERS && head.length === frame.length) {
    return sanitize(text, Infinity);
  }
  return `${sanitize(text.slice(0, TAP_MAX_CHARACTERS), Infinity)}… (${frame.length} bytes)`;
}

/** One event as the tap prints it (without the newline). */
export function formatEvent(frames: Frames, json: boolean, now = new Date()): string {
  if (json) {
    return JSON.stringify({
      time: now.toISOString(),
      frames: frames.length,
      bytes: frames.reduce((sum, f) => sum + f.length, 0),
      data: frames.map(frameText),
    });
  }
  const first = frameText(frames[0] ?? new Uint8Array());
  return frames.length > 1 ? `${first} (+${frames.length - 1} frames)` : first;
}

/** Why a handshake failed, as the tap tells it. */
function refusal(event: SocketEvent, curve: boolean): string {
  if (event.name === "handshake_failed_auth") {
    return `the server did not admit this client key (status ${event.value}: is the public key of ` +
      "--curve-cert in its --curve-clients?)";
  }
  if (event.name === "handshake_failed_protocol") {
    const why = PROTOCOL_ERRORS[event.value] ?? `protocol error 0x${event.value.toString(16)}`;
    if (event.value === 0x11000002) {
      return curve
        ? "security mechanism mismatch (the server is not CURVE: leave out the --curve-* flags)"
        : "security mechanism mismatch (the server is CURVE: give --curve-server-key or --curve-servers)";
    }
    if (event.value === 0x11000001) return "cryptographic error (a wrong --curve-server-key?)";
    return why;
  }
  return curve
    ? "the server closed the connection during the CURVE handshake (a wrong --curve-server-key?)"
    : "the handshake failed (not a ZeroMQ PUB/XPUB, or a CURVE one: give --curve-server-key)";
}

/** Where the tap writes: events to `out`, its own lines to `err`. */
export interface TapOutput {
  /** Writes whole lines; false when the reader is gone (a closed pipe): the tap then ends. */
  out(text: string): boolean;
  err(line: string): void;
}

const encoder = new TextEncoder();

/** stdout and stderr; a closed stdout (`| head`) ends the tap quietly. */
export const STDIO: TapOutput = {
  out(text) {
    const bytes = encoder.encode(text);
    try {
      for (let at = 0; at < bytes.length;) at += Deno.stdout.writeSync(bytes.subarray(at));
      return true;
    } catch {
      return false;
    }
  },
  err: (line) => writeStderr(`${line}\n`),
};

/**
 * Runs the tap until `--count` events, a stop signal or a failure. Returns the exit code: 0,
 * or 1 after one line on stderr. Throws `UsageError` for bad options (exit 2).
 */
export async function runTap(
  request: TapRequest,
  signals: Pick<SignalListeners, "stop">,
  io: TapOutput = STDIO,
): Promise<number> {
  const options = tapOptions(request);
  await shieldWaits();
  const ctx = new Context({ ioThreads: 1 });
  const socket = ctx.socket(ZMQ_SUB);
  let failure: string | undefined;
  let connected = false;
  const fail = (why: string) => {
    failure ??= why;
    ctx.shutdown();
  };
  const where = options.endpoint;
  let lastTrouble = options.endpoint.startsWith("ipc://")
    ? "nothing listens there"
    : "nothing accepts connections there";
  try {
    socket.setInt(ZMQ_LINGER, 0);
    if (options.curve) socket.curveClient(options.curve);
    for (const prefix of options.prefixes) socket.setBytes(ZMQ_SUBSCRIBE, prefix);
    monitorSocket(ctx, socket, (event) => {
      switch (event.name) {
        case "handshake_succeeded":
          if (!connected) io.err(`${PROGRAM} tap: connected to ${where}`);
          connected = true;
          return;
        case "handshake_failed_auth":
        case "handshake_failed_protocol":
        case "handshake_failed_no_detail":
          return fail(`refused by ${where}: ${refusal(event, options.curve !== undefined)}`);
        case "disconnected":
          if (connected) io.err(`${PROGRAM} tap: ${where} disconnected; reconnecting`);
          connected = false;
          lastTrouble = "it closed each connection during the handshake (not a PUB or XPUB? the adaptor's " +
            "XPUB is its -p endpoint)";
          return;
      }
    });
    try {
      socket.connect(options.endpoint);
    } catch (error) {
      const why = error instanceof ZmqError ? explain(error) : String(error);
      throw new UsageError(`tap: cannot connect to ${where}: ${why}`);
    }
  } catch (error) {
    await ctx.terminate();
    throw error;
  }
  const timer = setTimeout(() => {
    if (!connected) {
      fail(`cannot connect to ${where} within ${options.connectTimeoutMs} ms: ${lastTrouble}`);
    }
  }, options.connectTimeoutMs);
  signals.stop.then(() => ctx.shutdown());
  let printed = 0;
  try {
    for (;;) {
      const first = await socket.receive();
      if (!first) break;
      let text = "";
      for (let frames: Frames | undefined = first; frames; frames = socket.tryReceive()) {
        text += formatEvent(frames, options.json) + "\n";
        if (++printed === options.count) break;
      }
      if (!io.out(text) || printed === options.count) break;
    }
  } catch (error) {
    if (!ctx.isShutDown) failure ??= `receiving from ${where} failed: ${(error as Error).message}`;
  } finally {
    clearTimeout(timer);
    await ctx.terminate();
  }
  if (failure === undefined) return 0;
  throw new StartupError(`tap: ${failure}`);
}
