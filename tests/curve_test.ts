/**
 * `--curve-servers`: the servers' certificates are read as `--curve-cert` and `--curve-clients`
 * are, capped and sanitised: a huge or hostile file is refused at once, in one safe line.
 */

import assert from "node:assert/strict";
import { makeConfig } from "../src/config/config.ts";
import { readServerKeys } from "../src/security/curve.ts";
import { keygen } from "../src/security/cert.ts";
import { UsageError } from "../src/errors.ts";

Deno.test("a server certificate of 300 MB is refused at once, not read whole", () => {
  const dir = Deno.makeTempDirSync({ prefix: "adaptor-curve-servers-" });
  try {
    const config = makeConfig({
      bind: [">tcp://edge1:6001"],
      curveCert: "/unused_secret",
      curveServers: dir,
    });
    const file = Deno.openSync(`${dir}/edge1:6001`, { write: true, create: true });
    file.truncateSync(300 * 1024 * 1024); // sparse: costs no disk
    file.close();
    assert.throws(() => readServerKeys(config, dir), (error: Error) => {
      assert.ok(error instanceof UsageError, String(error));
      assert.match(error.message, /edge1:6001: too large for a certificate/);
      return true;
    });
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("a server certificate with escape sequences is named in one safe line", () => {
  const dir = Deno.makeTempDirSync({ prefix: "adaptor-curve-servers-" });
  try {
    const config = makeConfig({
      bind: [">tcp://edge1:6001"],
      curveCert: "/unused_secret",
      curveServers: dir,
    });
    Deno.writeTextFileSync(`${dir}/edge1`, 'curve\n    public-key = "\x1b[31mred\x1b[0m"\n');
    assert.throws(() => readServerKeys(config, dir), (error: Error) => {
      assert.ok(
        !error.message.includes("\x1b") && !error.message.includes("\n"),
        JSON.stringify(error.message),
      );
      return true;
    });
    const good = keygen(`${dir}/pair`);
    Deno.copyFileSync(good.publicPath, `${dir}/edge1`);
    assert.equal(readServerKeys(config, dir).keys.get("tcp://edge1:6001")?.key, good.publicKey);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
