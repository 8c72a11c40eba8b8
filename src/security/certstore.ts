/**
 * The directory of allowed clients' public certificates (`--curve-clients`), read as CZMQ's
 * zcertstore reads one: every non-hidden file a certificate, secret ones set apart, hostile names
 * and contents reported escaped.
 */

import { UsageError } from "../errors.ts";
import { sanitize } from "../ops/sanitize.ts";
import {
  CertificateError,
  describeFsError,
  octal,
  parseCertificate,
  readCertificateText,
  statOrThrow,
} from "./cert.ts";

export interface ClientKeys {
  readonly dir: string;
  /** Z85 public key → the certificate file that admits it. */
  readonly keys: ReadonlyMap<string, string>;
  /** Files that are not valid certificates (an error at start-up, a warning on reload). */
  readonly invalid: readonly { file: string; reason: string }[];
  /** Files deliberately skipped (secret certificates, non-files), with the reason. */
  readonly ignored: readonly { file: string; reason: string }[];
}

/**
 * Reads every certificate in `dir`, as CZMQ's certificate store does: each non-hidden file is
 * a certificate whose public key is admitted. Files named `*_secret` are skipped: a client's
 * secret key has no business on the server. Throws `UsageError` when the directory is missing,
 * unreadable, or writable by every user (anyone could then admit themselves).
 */
export function readClientKeys(dir: string, flag = "--curve-clients"): ClientKeys {
  const where = `${flag} '${dir}'`;
  const info = statOrThrow(dir, where, "directory");
  if (!info.isDirectory) throw new UsageError(`${where}: not a directory`);
  if (info.mode !== null && (info.mode & 0o002) !== 0) {
    throw new UsageError(
      `${where}: writable by every user (mode ${octal(info.mode)}), so anyone could add a key; ` +
        `run chmod o-w '${dir}'`,
    );
  }
  let names: string[];
  try {
    names = [...Deno.readDirSync(dir)].map((e) => e.name).sort();
  } catch (error) {
    throw new UsageError(`${where}: cannot list: ${describeFsError(error)}`);
  }
  const keys = new Map<string, string>();
  const invalid: { file: string; reason: string }[] = [];
  const ignored: { file: string; reason: string }[] = [];
  for (const name of names) {
    if (name.startsWith(".")) continue;
    const path = `${dir.replace(/\/+$/, "")}/${name}`;
    // What is said about the file: its name may hold anything a file name can.
    const shown = `${dir.replace(/\/+$/, "")}/${sanitize(name, 100)}`;
    if (name.endsWith("_secret")) {
      ignored.push({ file: shown, reason: "a secret certificate; only public certificates belong here" });
      continue;
    }
    let fileInfo: Deno.FileInfo;
    try {
      fileInfo = Deno.statSync(path);
    } catch (error) {
      invalid.push({ file: shown, reason: describeFsError(error) });
      continue;
    }
    if (!fileInfo.isFile) {
      ignored.push({ file: shown, reason: "not a regular file" });
      continue;
    }
    try {
      const cert = parseCertificate(readCertificateText(path));
      if (!keys.has(cert.publicKey)) keys.set(cert.publicKey, shown);
    } catch (error) {
      const reason = error instanceof CertificateError ? error.message : describeFsError(error);
      invalid.push({ file: shown, reason });
    }
  }
  return { dir, keys, invalid, ignored };
}
