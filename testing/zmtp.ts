/**
 * Raw stream connections to ZeroMQ endpoints, for sending what no ZeroMQ library would:
 * garbage, a greeting that announces a huge frame, nothing at all. Also the few ZMTP 3
 * frames (RFC 23) needed to act as a peer by hand: greeting, READY, a subscription.
 */

/**
 * A plain tcp or unix-socket connection to `endpoint` (`tcp://host:port` or `ipc:///path`).
 * A unix socket whose listen backlog is full refuses at once (EAGAIN) where tcp would wait;
 * that is retried for up to `ms`.
 */
export async function connectRaw(endpoint: string, ms = 5_000): Promise<Deno.Conn> {
  const tcp = /^tcp:\/\/([^:]+):(\d+)$/.exec(endpoint);
  if (tcp) return Deno.connect({ hostname: tcp[1], port: Number(tcp[2]) });
  const ipc = /^ipc:\/\/(\/.+)$/.exec(endpoint);
  if (!ipc) throw new Error(`connectRaw: unsupported endpoint ${endpoint}`);
  const deadline = performance.now() + ms;
  for (;;) {
    try {
      return await Deno.connect({ transport: "unix", path: ipc[1] });
    } catch (error) {
      if (!(error instanceof Deno.errors.WouldBlock) || performance.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  }
}

/** Writes `bytes`, ignoring a peer that already closed (that is what garbage gets). */
export async function writeIgnoringClose(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  try {
    let at = 0;
    while (at < bytes.length) at += await conn.write(bytes.subarray(at));
  } catch (error) {
    if (!(error instanceof Deno.errors.BrokenPipe || error instanceof Deno.errors.ConnectionReset)) {
      throw error;
    }
  }
}

/** Reads until the peer closes; returns the byte count, or undefined if still open after `ms`. */
export async function readUntilClosed(conn: Deno.Conn, ms: number): Promise<number | undefined> {
  const buf = new Uint8Array(65_536);
  let total = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<"timeout">((resolve) => timer = setTimeout(() => resolve("timeout"), ms));
  try {
    for (;;) {
      const n = await Promise.race([conn.read(buf).catch(() => null), timeout]);
      if (n === "timeout") return undefined;
      if (n === null) return total;
      total += n;
    }
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Completes a ZMTP 3.1 NULL handshake as a `socketType` peer: sends greeting and READY, then
 * waits for the other side's greeting and READY. Only then may messages follow: a message
 * that arrives before the server sent its READY counts as an unexpected command.
 */
export async function handshake(conn: Deno.Conn, socketType: string, ms = 5_000): Promise<void> {
  await conn.write(concat(greeting(), ready(socketType)));
  const buf = new Uint8Array(512);
  let got = 0;
  const deadline = performance.now() + ms;
  // Greeting (64 bytes), then the READY command: flags 0x04 and a one-byte size.
  while (got < 66 || got < 66 + buf[65]) {
    if (performance.now() > deadline) throw new Error("handshake: no READY from the adaptor");
    const n = await conn.read(buf.subarray(got));
    if (n === null) throw new Error("handshake: the adaptor closed the connection");
    got += n;
  }
}

/** A ZMTP 3.`minor` greeting for the NULL mechanism, as a client (64 bytes). */
export function greeting(minor = 1): Uint8Array {
  const g = new Uint8Array(64);
  g[0] = 0xff;
  g[9] = 0x7f;
  g[10] = 3;
  g[11] = minor;
  g.set(new TextEncoder().encode("NULL"), 12);
  return g;
}

/** A READY command announcing `socketType` (e.g. "SUB", "PUB"). */
export function ready(socketType: string): Uint8Array {
  const enc = new TextEncoder();
  const name = enc.encode("Socket-Type");
  const value = enc.encode(socketType);
  const body = new Uint8Array(1 + 5 + 1 + name.length + 4 + value.length);
  let at = 0;
  body[at++] = 5;
  body.set(enc.encode("READY"), at);
  at += 5;
  body[at++] = name.length;
  body.set(name, at);
  at += name.length;
  new DataView(body.buffer).setUint32(at, value.length);
  body.set(value, at + 4);
  return concat(new Uint8Array([0x04, body.length]), body);
}

/** A one-frame message (short or long form by size). */
export function frame(body: Uint8Array, more = false): Uint8Array {
  if (body.length < 256) return concat(new Uint8Array([more ? 1 : 0, body.length]), body);
  return concat(longFrameHeader(BigInt(body.length), more), body);
}

/** The 9-byte header of a long frame announcing `size` bytes. */
export function longFrameHeader(size: bigint, more = false): Uint8Array {
  const header = new Uint8Array(9);
  header[0] = 0x02 | (more ? 1 : 0);
  new DataView(header.buffer).setBigUint64(1, size);
  return header;
}

/** A ZMTP 3.0-style subscription message (0x01 + topic), which libzmq 4.3 takes from any 3.x peer. */
export function subscription(topic: string): Uint8Array {
  return frame(concat(new Uint8Array([1]), new TextEncoder().encode(topic)));
}

/** A ZMTP 3.0-style unsubscription message (0x00 + topic), which libzmq 4.3 takes from any 3.x peer. */
export function unsubscription(topic: string): Uint8Array {
  return frame(concat(new Uint8Array([0]), new TextEncoder().encode(topic)));
}

/** A ZMTP 3.1 command (short form): `name` and its data, e.g. `command("CANCEL", "usage.")`. */
export function command(name: string, data: string): Uint8Array {
  const enc = new TextEncoder();
  const body = concat(new Uint8Array([name.length]), enc.encode(name), enc.encode(data));
  if (body.length > 255) throw new Error("command: only the short form is written here");
  return concat(new Uint8Array([0x04, body.length]), body);
}

/**
 * Bytes that start like a ZMTP signature but, with the low bit of byte 9 clear, make libzmq
 * read them as an unversioned ZMTP/1.0 frame header with a 64-bit length of `size` + 1.
 */
export function v1HugeFrame(size: bigint): Uint8Array {
  const bytes = new Uint8Array(10);
  bytes[0] = 0xff;
  new DataView(bytes.buffer).setBigUint64(1, size + 1n);
  bytes[9] = 0x00;
  return bytes;
}

/** `n` bytes from a seeded generator (the same garbage on every run). */
export function garbage(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

export function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
