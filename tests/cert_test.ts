/**
 * Certificates (src/security/cert.ts): keygen writes CZMQ's exact format and never overwrites;
 * certificates from CZMQ-style and hand-written files parse; every bad certificate, directory
 * and setting is refused with one line naming the flag and the file.
 */

import assert from "node:assert/strict";
import { parseArgs } from "../src/config/cli.ts";
import { fileMode, makeConfig } from "../src/config/config.ts";
import { StartupError, UsageError } from "../src/errors.ts";
import {
  formatCertificate,
  keygen,
  MAX_CERTIFICATE_BYTES,
  parseCertificate,
  readSecretCertificate,
} from "../src/security/cert.ts";
import { readClientKeys } from "../src/security/certstore.ts";
import { parseZpl, zplLocate } from "../src/security/zpl.ts";
import { curveKeypair, curvePublic, z85Decode, z85Encode } from "../src/zmq/z85.ts";

const tempDir = () => Deno.makeTempDirSync({ prefix: "adaptor-sec-" });

Deno.test("keygen writes CZMQ's certificate pair: exact layout, parsed back, secret 0600", () => {
  const dir = tempDir();
  const when = new Date(2024, 0, 2, 3, 4, 5);
  const { publicPath, secretPath, publicKey } = keygen(`${dir}/node1`, {}, when);
  assert.equal(publicPath, `${dir}/node1`);
  assert.equal(secretPath, `${dir}/node1_secret`);

  const publicText = Deno.readTextFileSync(publicPath);
  assert.deepEqual(publicText.split("\n"), [
    "#   ****  Generated on 2024-01-02 03:04:05 by CZMQ  ****",
    "#   ZeroMQ CURVE Public Certificate",
    "#   Exchange securely, or use a secure mechanism to verify the contents",
    "#   of this file after exchange. Store public certificates in your home",
    "#   directory, in the .curve subdirectory.",
    "",
    "metadata",
    "curve",
    `    public-key = "${publicKey}"`,
    "",
  ]);
  const secretText = Deno.readTextFileSync(secretPath);
  const secretLines = secretText.split("\n");
  assert.deepEqual(secretLines.slice(0, 8), [
    "#   ****  Generated on 2024-01-02 03:04:05 by CZMQ  ****",
    "#   ZeroMQ CURVE **Secret** Certificate",
    "#   DO NOT PROVIDE THIS FILE TO OTHER USERS nor change its permissions.",
    "",
    "metadata",
    "curve",
    `    public-key = "${publicKey}"`,
    secretLines[7],
  ]);
  assert.match(secretLines[7], /^ {4}secret-key = "[\x21-\x7e]{40}"$/);

  const pub = parseCertificate(publicText);
  assert.equal(pub.publicKey, publicKey);
  assert.equal(pub.secretKey, undefined);
  const secret = readSecretCertificate(secretPath);
  assert.equal(secret.publicKey, publicKey);
  assert.equal(curvePublic(secret.secretKey), publicKey, "the secret key is the public key's partner");
  assert.equal(Deno.statSync(secretPath).mode! & 0o777, 0o600);
  // Two runs never make the same key.
  assert.notEqual(keygen(`${dir}/node2`).publicKey, publicKey);
});

Deno.test("keygen never overwrites: an existing PATH or PATH_secret stops it before writing", () => {
  const dir = tempDir();
  Deno.writeTextFileSync(`${dir}/a`, "keep me");
  assert.throws(
    () => keygen(`${dir}/a`),
    (e: unknown) => e instanceof StartupError && /'.*\/a' already exists/.test(e.message),
  );
  assert.equal(Deno.readTextFileSync(`${dir}/a`), "keep me");
  assert.throws(() => Deno.statSync(`${dir}/a_secret`), Deno.errors.NotFound);

  Deno.writeTextFileSync(`${dir}/b_secret`, "keep me too");
  assert.throws(() => keygen(`${dir}/b`), /b_secret' already exists; not overwriting it/);
  assert.equal(Deno.readTextFileSync(`${dir}/b_secret`), "keep me too");
  assert.throws(() => Deno.statSync(`${dir}/b`), Deno.errors.NotFound);

  assert.throws(() => keygen(`${dir}/no-such-dir/c`), /cannot create .*no such file or directory/);
});

Deno.test("certificates in other hands' styles parse: metadata, quotes, comments, other generators", () => {
  const { publicKey, secretKey } = curveKeypair();
  const text = [
    "#   ****  Generated on 2015-02-16 01:31:02 by pyzmq  ****",
    "#   ZeroMQ CURVE **Secret** Certificate",
    "",
    "metadata",
    '    email = "ops@example.org"',
    "    name = 'tracking service 7'",
    "    team = billing      # unquoted, with a comment",
    "curve",
    `    public-key = "${publicKey}"   # the key to hand out`,
    `    secret-key = '${secretKey}'`,
  ].join("\n");
  const cert = parseCertificate(text);
  assert.equal(cert.publicKey, publicKey);
  assert.equal(cert.secretKey, secretKey);
  assert.deepEqual(cert.metadata, { email: "ops@example.org", name: "tracking service 7", team: "billing" });
  // And what we write with metadata reads back the same.
  const again = parseCertificate(formatCertificate(cert, "secret"));
  assert.deepEqual(again, cert);
});

Deno.test("ZPL syntax errors name the line", () => {
  const cases: [string, RegExp][] = [
    ["curve\n   public-key = x", /line 2: indent 4 spaces at a time/],
    ["curve\n\tpublic-key = x", /line 2: tab in indentation/],
    ['curve\n    public-key = "abc', /line 2: missing closing "/],
    ['curve\n    public-key = "abc" junk', /line 2: invalid syntax 'junk'/],
    ["        deep = 1", /line 1: indentation error/],
    ["= value", /line 1: invalid syntax '= value'/],
  ];
  for (const [text, expected] of cases) assert.throws(() => parseZpl(text), expected, text);
  const root = parseZpl("a\n    b\n        c = 'x'\n    d = y # c\n");
  assert.equal(zplLocate(root, "a/b/c")?.value, "x");
  assert.equal(zplLocate(root, "/a/d")?.value, "y");
});

Deno.test("--curve-cert refuses, in one line naming flag and file: missing, public, readable, malformed, mismatched", () => {
  const dir = tempDir();
  const { secretPath, publicPath } = keygen(`${dir}/server`);
  const refused = (path: string, reason: RegExp) =>
    assert.throws(
      () => readSecretCertificate(path),
      (e: unknown) =>
        e instanceof UsageError && e.message.startsWith(`--curve-cert '${path}': `) &&
        reason.test(e.message) &&
        !e.message.includes("\n"),
      `${path} should be refused with ${reason}`,
    );
  refused(`${dir}/absent`, /no such file/);
  refused(
    publicPath,
    new RegExp(`a public certificate \\(no secret-key\\); give the secret one, '${secretPath}'`),
  );
  Deno.chmodSync(secretPath, 0o640);
  refused(secretPath, /accessible by group or others \(mode 0640\); run chmod 600/);
  Deno.chmodSync(secretPath, 0o604);
  refused(secretPath, /mode 0604/);
  Deno.chmodSync(secretPath, 0o600);
  assert.ok(readSecretCertificate(secretPath).secretKey);

  const write = (name: string, text: string) => {
    Deno.writeTextFileSync(`${dir}/${name}`, text, { mode: 0o600 });
    Deno.chmodSync(`${dir}/${name}`, 0o600);
    return `${dir}/${name}`;
  };
  const { publicKey, secretKey } = curveKeypair();
  const other = curveKeypair();
  refused(
    write("short", `curve\n    public-key = "abc"\n    secret-key = "${secretKey}"\n`),
    /public-key is not a 40-character Z85 key/,
  );
  refused(write("badchar", `curve\n    public-key = "${"~".repeat(40)}"\n`), /not a 40-character Z85 key/);
  refused(write("nokey", "metadata\n    name = x\n"), /no curve\/public-key/);
  refused(write("notzpl", "-----BEGIN OPENSSH PRIVATE KEY-----\n"), /not a ZPL file: line 1/);
  refused(
    write("mismatch", `curve\n    public-key = "${publicKey}"\n    secret-key = "${other.secretKey}"\n`),
    /secret-key does not belong to curve\/public-key/,
  );
  refused(dir, /not a regular file/);
});

Deno.test("--curve-clients: public certificates admitted; secret, hidden and invalid files set apart", () => {
  const dir = tempDir();
  const a = keygen(`${dir}/tracker-a`);
  const b = keygen(`${dir}/tracker-b`);
  Deno.writeTextFileSync(`${dir}/.tracker-b.swp`, "editor junk");
  Deno.writeTextFileSync(`${dir}/broken`, "curve\n    public-key = 'nope'\n");
  Deno.mkdirSync(`${dir}/sub`);
  const keys = readClientKeys(dir);
  assert.deepEqual([...keys.keys], [[a.publicKey, `${dir}/tracker-a`], [b.publicKey, `${dir}/tracker-b`]]);
  assert.deepEqual(keys.invalid.map((i) => i.file), [`${dir}/broken`]);
  assert.deepEqual(keys.ignored.map((i) => i.file).sort(), [
    `${dir}/sub`,
    `${dir}/tracker-a_secret`,
    `${dir}/tracker-b_secret`,
  ]);

  assert.throws(() => readClientKeys(`${dir}/absent`), /--curve-clients '.*\/absent': no such directory/);
  assert.throws(() => readClientKeys(`${dir}/tracker-a`), /not a directory/);
  Deno.chmodSync(dir, 0o777);
  assert.throws(() => readClientKeys(dir), /writable by every user \(mode 0777\), so anyone could add a key/);
});

Deno.test("hostile certificate files: escape sequences escaped, a 3 MB line cut, a 200 MB file not read whole", () => {
  const dir = tempDir();
  try {
    const write = (name: string, text: string) => {
      Deno.writeTextFileSync(`${dir}/${name}`, text, { mode: 0o600 });
      Deno.chmodSync(`${dir}/${name}`, 0o600);
      return `${dir}/${name}`;
    };
    const message = (path: string) => {
      try {
        readSecretCertificate(path);
      } catch (error) {
        assert.ok(error instanceof UsageError, String(error));
        return error.message;
      }
      throw new Error(`${path} was accepted`);
    };
    // An escape sequence (clear screen, OSC title) in a value and in a syntax error.
    const escapes = message(write("esc", 'curve\n    public-key = "\x1b[2J\x1b]0;pwned\x07"\n'));
    assert.match(escapes, /public-key is not a 40-character Z85 key \('\\x1b\[2J\\x1b\]0;pwned\\x07'\)$/);
    const syntax = message(write("syntax", 'curve\n    public-key = "k" \u202e\x9b31m'));
    assert.match(syntax, /line 2: invalid syntax '\\u202e\\x9b31m'$/);
    // A long line: the error quotes its start only (the cap below keeps 3 MB from being read).
    const long = message(write("long", `curve\n    public-key = "${"A".repeat(10_000)}"\n`));
    assert.ok(long.length < 300, `${long.length} characters`);
    assert.match(long, /'A{60}… \(9940 more characters\)'\)$/);
    for (const text of [escapes, syntax, long]) {
      // deno-lint-ignore no-control-regex -- checking that none is left
      assert.doesNotMatch(text, /[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e]/);
    }
    // 3 MB and 200 MB files (sparse: no disk used): refused after MAX_CERTIFICATE_BYTES + 1 bytes.
    for (const size of [3_000_000, 200_000_000]) {
      const path = `${dir}/big-${size}`;
      const file = Deno.openSync(path, { write: true, create: true, mode: 0o600 });
      file.truncateSync(size);
      file.close();
      Deno.chmodSync(path, 0o600);
      assert.equal(
        message(path),
        `--curve-cert '${path}': too large for a certificate (${size} bytes; they are under 1 KiB, ` +
          `and at most ${MAX_CERTIFICATE_BYTES} bytes are read)`,
      );
    }
    // A file of exactly the cap is read (and judged on its content).
    const padded = keygen(`${dir}/padded`);
    const text = Deno.readTextFileSync(padded.secretPath);
    const comment = "#" + "x".repeat(MAX_CERTIFICATE_BYTES - text.length - 2) + "\n";
    Deno.writeTextFileSync(padded.secretPath, comment + text);
    assert.equal(Deno.statSync(padded.secretPath).size, MAX_CERTIFICATE_BYTES);
    assert.equal(readSecretCertificate(padded.secretPath).publicKey, padded.publicKey);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("--curve-clients (and SIGHUP's reread): hostile file names and contents reach the warnings escaped and short", () => {
  const dir = tempDir();
  try {
    const ok = keygen(`${dir}/tracker`);
    Deno.removeSync(ok.secretPath);
    Deno.writeTextFileSync(`${dir}/evil\x1b[31m`, "curve\n    public-key = '\x1b]0;title\x07'\n");
    Deno.writeTextFileSync(`${dir}/long-line`, `curve\n    x = 1 ${"y".repeat(3_000_000)}\n`);
    const big = Deno.openSync(`${dir}/huge`, { write: true, create: true });
    big.truncateSync(200_000_000);
    big.close();
    Deno.writeTextFileSync(`${dir}/secret\u2028x_secret`, "");
    const keys = readClientKeys(dir);
    assert.deepEqual([...keys.keys.keys()], [ok.publicKey]);
    const said = [...keys.invalid, ...keys.ignored].map(({ file, reason }) => `${file}: ${reason}`);
    assert.equal(said.length, 4, said.join("\n"));
    for (const line of said) {
      // deno-lint-ignore no-control-regex -- checking that none is left
      assert.doesNotMatch(line, /[\x00-\x1f\x7f-\x9f\u2028\u2029]/, line);
      assert.ok(line.length < 400, `${line.length} characters`);
    }
    const by = (name: string) => said.find((l) => l.startsWith(`${dir}/${name}`))!;
    assert.match(by("evil\\x1b[31m"), /public-key is not a 40-character Z85 key \('\\x1b\]0;title\\x07'\)/);
    assert.match(by("long-line"), /too large for a certificate \(3000017 bytes;/);
    assert.match(by("huge"), /too large for a certificate \(200000000 bytes;/);
    assert.match(by("secret\\u2028x_secret"), /a secret certificate/);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("Z85 through libzmq: round trip, and invalid text refused", () => {
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  const text = z85Encode(bytes);
  assert.equal(text.length, 40);
  assert.deepEqual(z85Decode(text), bytes);
  assert.equal(z85Decode(text.slice(1)), undefined, "length not a multiple of 5");
  assert.equal(z85Decode('"' + text.slice(1)), undefined, "outside the alphabet");
});

Deno.test("security settings: flags, ADAPTOR_* variables, modes, and keygen on the command line", () => {
  const run = (argv: string[], env: Record<string, string> = {}) => {
    const invocation = parseArgs(argv, env);
    assert.equal(invocation.kind, "run");
    return (invocation as Extract<typeof invocation, { kind: "run" }>).config;
  };
  const defaults = run([]);
  assert.equal(defaults.ipcMode, 0o660);
  assert.equal(defaults.curveCert, undefined);
  const env = {
    ADAPTOR_CURVE_CERT: "/etc/adaptor/node_secret",
    ADAPTOR_CURVE_CLIENTS: "/etc/adaptor/clients",
    ADAPTOR_IPC_MODE: "0640",
    ADAPTOR_IPC_GROUP: "nginx",
  };
  const fromEnv = run([], env);
  assert.deepEqual(
    [fromEnv.curveCert, fromEnv.curveClients, fromEnv.ipcMode, fromEnv.ipcGroup],
    ["/etc/adaptor/node_secret", "/etc/adaptor/clients", 0o640, "nginx"],
  );
  const flagsWin = run(["--curve-cert", "/k_secret", "--ipc-mode", "600", "--ipc-group", "101"], env);
  assert.deepEqual([flagsWin.curveCert, flagsWin.ipcMode, flagsWin.ipcGroup], ["/k_secret", 0o600, "101"]);

  assert.equal(fileMode("--ipc-mode", "0o750"), 0o750);
  assert.equal(fileMode("--ipc-mode", "0"), 0);
  for (const bad of ["999", "4755", "rw-rw----", "", "0x1b6"]) {
    assert.throws(() => fileMode("--ipc-mode", bad), /--ipc-mode '.*': expected an octal mode/);
  }
  assert.throws(() => makeConfig({ curveClients: "/d" }), /--curve-clients '\/d': needs --curve-cert/);
  assert.throws(() => makeConfig({ ipcGroup: "no group" }), /--ipc-group 'no group'/);

  assert.deepEqual(parseArgs(["keygen", "/tmp/node1"]), { kind: "keygen", path: "/tmp/node1" });
  assert.throws(() => parseArgs(["keygen"]), /keygen: missing required argument 'path'/);
  assert.throws(() => parseArgs(["keygen", "a", "b"]), UsageError);
});
