/**
 * CURVE certificates in CZMQ's format, so that keys made by `zcert`/`zauth` tools (and by
 * pyzmq's `zmq.auth`) work here and ours work there.
 *
 * A certificate is a ZPL text file (ZeroMQ RFC 4: names and `name = "value"` pairs, nested by
 * 4-space indentation, `#` comments) with a `metadata` section and a `curve` section holding
 * `public-key` and, in the secret file only, `secret-key`, each 40 characters of Z85. As
 * `zcert_save` does, `keygen` writes PATH (public, to hand out) and PATH_secret (mode 0600).
 *
 * Every problem with a certificate given on the command line is a `UsageError` naming the flag
 * and the file: the adaptor exits 2 with one line, before it opens anything.
 *
 * Files are read from outside the adaptor's control (a clients directory others may fill), so
 * what an error quotes from them is escaped and cut short (`sanitize`: an escape sequence in a
 * certificate must not reach the terminal, a 3 MB line must not become a 3 MB log line), and no
 * file is read past `MAX_CERTIFICATE_BYTES` (a certificate is under 1 KiB).
 */

import { StartupError, UsageError } from "../errors.ts";
import { sanitize } from "../ops/sanitize.ts";
import { hasCapability } from "../zmq/binding.ts";
import { curveKeypair, curvePublic, z85Decode } from "../zmq/z85.ts";
import { parseZpl, quoted, ZplError, zplLocate, type ZplNode } from "./zpl.ts";

/** A CURVE certificate: Z85 keys and free-form metadata. */

export interface Certificate {
  readonly publicKey: string;
  /** Only in a secret certificate. */
  readonly secretKey?: string;
  readonly metadata: Readonly<Record<string, string>>;
}

/** A certificate that has its secret key. */
export type SecretCertificate = Certificate & { readonly secretKey: string };

/** Why a text is not a usable certificate (no file name: callers add it). */
export class CertificateError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "CertificateError";
  }
}

/** Whether `text` is a well-formed CURVE key: 40 characters of Z85 (32 bytes). */
export function isCurveKey(text: string): boolean {
  return text.length === 40 && z85Decode(text)?.length === 32;
}

/**
 * Reads a certificate from ZPL `text`: `curve/public-key` is required, `curve/secret-key`
 * optional and, when present, must be the public key's partner. Throws `CertificateError`.
 */
export function parseCertificate(text: string): Certificate {
  let root: ZplNode;
  try {
    root = parseZpl(text);
  } catch (error) {
    if (error instanceof ZplError) throw new CertificateError(`not a ZPL file: ${error.message}`);
    throw error;
  }
  const publicKey = zplLocate(root, "curve/public-key")?.value;
  if (publicKey === undefined) throw new CertificateError("no curve/public-key (not a CURVE certificate)");
  if (!isCurveKey(publicKey)) {
    throw new CertificateError(`curve/public-key is not a 40-character Z85 key (${quoted(publicKey)})`);
  }
  const secretKey = zplLocate(root, "curve/secret-key")?.value;
  if (secretKey !== undefined) {
    if (!isCurveKey(secretKey)) throw new CertificateError("curve/secret-key is not a 40-character Z85 key");
    if (curvePublic(secretKey) !== publicKey) {
      throw new CertificateError("curve/secret-key does not belong to curve/public-key");
    }
  }
  const metadata: Record<string, string> = {};
  for (const item of zplLocate(root, "metadata")?.children ?? []) metadata[item.name] = item.value;
  return secretKey === undefined ? { publicKey, metadata } : { publicKey, secretKey, metadata };
}

const PUBLIC_COMMENTS = [
  "   ZeroMQ CURVE Public Certificate",
  "   Exchange securely, or use a secure mechanism to verify the contents",
  "   of this file after exchange. Store public certificates in your home",
  "   directory, in the .curve subdirectory.",
];

const SECRET_COMMENTS = [
  "   ZeroMQ CURVE **Secret** Certificate",
  "   DO NOT PROVIDE THIS FILE TO OTHER USERS nor change its permissions.",
];

/** `zclock_timestr`'s local "YYYY-MM-DD hh:mm:ss". */
function timestamp(date: Date): string {
  const two = (n: number) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${two(date.getMonth() + 1)}-${two(date.getDate())} ` +
    `${two(date.getHours())}:${two(date.getMinutes())}:${two(date.getSeconds())}`;
}

/**
 * The text `zcert_save_public` (kind "public") or `zcert_save_secret` (kind "secret") writes
 * for `cert`: comments, a blank line, `metadata` with its items, `curve` with the key(s).
 */
export function formatCertificate(
  cert: Certificate,
  kind: "public" | "secret",
  generatedAt = new Date(),
): string {
  if (kind === "secret" && cert.secretKey === undefined) {
    throw new CertificateError("a secret certificate needs the secret key");
  }
  const comments = [
    `   ****  Generated on ${timestamp(generatedAt)} by CZMQ  ****`,
    ...(kind === "public" ? PUBLIC_COMMENTS : SECRET_COMMENTS),
  ];
  const lines = comments.map((c) => `#${c}`);
  lines.push("", "metadata");
  for (const [name, value] of Object.entries(cert.metadata)) lines.push(`    ${name} = "${value}"`);
  lines.push("curve", `    public-key = "${cert.publicKey}"`);
  if (kind === "secret") lines.push(`    secret-key = "${cert.secretKey}"`);
  return lines.join("\n") + "\n";
}

/** `mode` as the four-digit octal text `ls` users know, e.g. "0640". */
export function octal(mode: number): string {
  return "0" + (mode & 0o777).toString(8).padStart(3, "0");
}

/**
 * Loads the secret certificate at `path` for `flag` (e.g. `--curve-cert`). Throws
 * `UsageError` when the file is missing or unreadable, is not a certificate, is a public
 * certificate, or can be read or written by group or others.
 */
export function readSecretCertificate(path: string, flag = "--curve-cert"): SecretCertificate {
  const where = `${flag} '${path}'`;
  const info = statOrThrow(path, where, "file");
  if (!info.isFile) throw new UsageError(`${where}: not a regular file`);
  const cert = readCertificateFile(path, where);
  if (cert.secretKey === undefined) {
    const hint = exists(`${path}_secret`) ? `'${path}_secret'` : "the PATH_secret file of the pair";
    throw new UsageError(`${where}: a public certificate (no secret-key); give the secret one, ${hint}`);
  }
  if (info.mode !== null && (info.mode & 0o077) !== 0) {
    throw new UsageError(
      `${where}: secret certificate is accessible by group or others (mode ${octal(info.mode)}); ` +
        `run chmod 600 '${path}'`,
    );
  }
  return cert as SecretCertificate;
}

/**
 * The certificate at `path`, read capped (`readCertificateText`) and parsed; throws `UsageError`
 * starting with `where` (e.g. the flag and file) and saying what is wrong, in one safe line.
 */
export function readCertificateFile(path: string, where: string): Certificate {
  let text: string;
  try {
    text = readCertificateText(path);
  } catch (error) {
    if (error instanceof CertificateError) throw new UsageError(`${where}: ${error.message}`);
    throw new UsageError(`${where}: cannot read: ${describeFsError(error)}`);
  }
  try {
    return parseCertificate(text);
  } catch (error) {
    if (error instanceof CertificateError) throw new UsageError(`${where}: ${error.message}`);
    throw error;
  }
}

/**
 * The most of a certificate file that is read. CZMQ's certificates are about 300 bytes (a
 * secret one with a few metadata items well under 1 KiB); this leaves room for comments.
 */
export const MAX_CERTIFICATE_BYTES = 16_384;

/**
 * The text of the certificate file at `path`, read up to `MAX_CERTIFICATE_BYTES` (a file that
 * grows while being read is not followed past it). Throws `CertificateError` for a larger
 * file, file-system errors as they come.
 */
export function readCertificateText(path: string): string {
  const file = Deno.openSync(path, { read: true });
  try {
    const buffer = new Uint8Array(MAX_CERTIFICATE_BYTES + 1);
    let length = 0;
    for (;;) {
      const n = file.readSync(buffer.subarray(length));
      if (n === null || n === 0) break;
      length += n;
      if (length > MAX_CERTIFICATE_BYTES) {
        const size = file.statSync().size;
        throw new CertificateError(
          `too large for a certificate (${size > length ? size : "over " + MAX_CERTIFICATE_BYTES} bytes; ` +
            `they are under 1 KiB, and at most ${MAX_CERTIFICATE_BYTES} bytes are read)`,
        );
      }
    }
    return new TextDecoder().decode(buffer.subarray(0, length));
  } finally {
    file.close();
  }
}

export function statOrThrow(path: string, where: string, kind: "file" | "directory"): Deno.FileInfo {
  try {
    return Deno.statSync(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) throw new UsageError(`${where}: no such ${kind}`);
    throw new UsageError(`${where}: cannot read: ${describeFsError(error)}`);
  }
}

function exists(path: string): boolean {
  try {
    Deno.lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

export function describeFsError(error: unknown): string {
  if (error instanceof Deno.errors.PermissionDenied) return "permission denied";
  if (error instanceof Deno.errors.NotFound) return "no such file or directory";
  if (error instanceof Deno.errors.NotCapable) return "the adaptor lacks --allow-read for it";
  const text = error instanceof Error ? error.message : String(error);
  return sanitize(text.replace(/\s*\(os error \d+\).*$/, ""));
}

// ---------------------------------------------------------------------------------------------
// The clients directory (--curve-clients)

/** The public keys found in a clients directory, and what was left out and why. */

// ---------------------------------------------------------------------------------------------
// keygen

/** What `keygen` wrote. */

export interface KeygenResult {
  readonly publicPath: string;
  readonly secretPath: string;
  readonly publicKey: string;
}

/**
 * Writes a new CURVE certificate pair as `zcert_save` does: `path` (public) and `path_secret`
 * (mode 0600). Never overwrites: if either file exists, nothing is written and a
 * `StartupError` says which. Also a `StartupError` when this libzmq has no CURVE.
 *
 * @example A node's pair, as `adaptor keygen /etc/api-gateway/curve/node1` makes it
 * ```ts
 * import { keygen } from "../src/security/cert.ts";
 *
 * const { publicPath, secretPath, publicKey } = keygen("/tmp/node1", { hostname: "node1" });
 * // publicPath "/tmp/node1" goes to the other side; secretPath "/tmp/node1_secret" is --curve-cert
 * console.log(publicKey.length); // 40 (Z85)
 * ```
 */
export function keygen(path: string, metadata: Record<string, string> = {}, now = new Date()): KeygenResult {
  if (!hasCapability("curve")) {
    throw new StartupError("keygen: this libzmq was built without CURVE support");
  }
  const publicPath = path;
  const secretPath = `${path}_secret`;
  for (const file of [publicPath, secretPath]) {
    if (exists(file)) throw new StartupError(`keygen: '${file}' already exists; not overwriting it`);
  }
  const keys = curveKeypair();
  const cert: Certificate = { ...keys, metadata };
  // The secret first, created 0600 from the start (never chmod'ed down from a readable mode).
  // Both files or neither: a failure removes what this run created, and its error is the one told.
  writeNew(secretPath, formatCertificate(cert, "secret", now), 0o600);
  try {
    writeNew(publicPath, formatCertificate(cert, "public", now), 0o644);
  } catch (error) {
    const left = removeCreated(secretPath);
    throw left ? new StartupError(`${(error as Error).message}; ${left}`) : error;
  }
  return { publicPath, secretPath, publicKey: keys.publicKey };
}

/** Creates `path` (never an existing file) with `text`; on a failed write, removes it again. */
function writeNew(path: string, text: string, mode: number): void {
  let file: Deno.FsFile;
  try {
    // createNew is O_EXCL: a file that appeared since the check is still never overwritten.
    file = Deno.openSync(path, { write: true, createNew: true, mode });
  } catch (error) {
    if (error instanceof Deno.errors.AlreadyExists) {
      throw new StartupError(`keygen: '${path}' already exists; not overwriting it`);
    }
    throw new StartupError(`keygen: cannot create '${path}': ${describeFsError(error)}`);
  }
  let failure: StartupError | undefined;
  try {
    const bytes = new TextEncoder().encode(text);
    let written = 0;
    while (written < bytes.length) written += file.writeSync(bytes.subarray(written));
    file.syncSync(); // a full disk may only tell at the flush
  } catch (error) {
    failure = new StartupError(`keygen: cannot write '${path}': ${describeFsError(error)}`);
  } finally {
    try {
      file.close();
    } catch (error) {
      failure ??= new StartupError(`keygen: cannot write '${path}': ${describeFsError(error)}`);
    }
  }
  if (!failure) return;
  const left = removeCreated(path);
  throw left ? new StartupError(`${failure.message}; ${left}`) : failure;
}

/** Removes a file this run created; what is left behind, said for the error line, if it could not. */
function removeCreated(path: string): string | undefined {
  try {
    Deno.removeSync(path);
    return undefined;
  } catch (error) {
    return `'${path}' is left behind (cannot remove it: ${describeFsError(error)})`;
  }
}
