/**
 * The `@example`s of the library surface, run as written (paths made fresh): an example that
 * no longer works fails here, not in a reader's hands.
 */

import assert from "node:assert/strict";
import { startAdaptor } from "../src/adaptor/adaptor.ts";
import { makeConfig } from "../src/config/config.ts";
import { keygen } from "../src/security/cert.ts";
import { exists, freePort, ipcPath } from "../testing/net.ts";

Deno.test("startAdaptor's and AdaptorHandle's examples", async () => {
  const path = ipcPath("example");
  const port = freePort();
  const adaptor = await startAdaptor(
    makeConfig({ bind: [`ipc://${path}`], publish: [`tcp://127.0.0.1:${port}`] }),
  );
  try {
    assert.deepEqual(adaptor.endpoints.publish, [`tcp://127.0.0.1:${port}`]);
    assert.deepEqual(adaptor.health(), { ok: true });
    const stats = await adaptor.statistics({ timeoutMs: 1000 });
    assert.equal(stats.main?.frontend.messagesIn, 0n);
    assert.equal(adaptor.reloadClients(), false);
  } finally {
    await adaptor.stop();
  }
  assert.ok(!exists(path) && !exists(`${path}.lock`), "the socket file and its lock are gone");
});

Deno.test("keygen's example", () => {
  const dir = Deno.makeTempDirSync();
  try {
    const { publicPath, secretPath, publicKey } = keygen(`${dir}/node1`, { hostname: "node1" });
    assert.equal(publicPath, `${dir}/node1`);
    assert.equal(secretPath, `${dir}/node1_secret`);
    assert.equal(publicKey.length, 40);
    assert.equal(Deno.statSync(secretPath).mode! & 0o777, 0o600);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
