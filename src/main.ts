/**
 * The adaptor's entry point. Signals first: the listeners are installed and kept off libzmq's
 * waiting threads before the rest of the program is even loaded (`import()` below: loading it
 * takes most of the start-up), so a SIGTERM during start-up stops the adaptor cleanly once it
 * is up instead of killing it half-started. Then `run.ts`: argv/env → Config → Adaptor →
 * signals → exit code (0 after a clean stop, 2 for usage errors, 1 for runtime errors).
 */

import { ignoreFileSizeSignal } from "./os/signals.ts";
import { listenForSignals, shieldWaits } from "./os/signals.ts";

if (import.meta.main) {
  ignoreFileSizeSignal(); // past `ulimit -f` a write fails with EFBIG (and is said) instead of killing us
  const signals = listenForSignals();
  await shieldWaits({ verify: false }); // threads started while loading inherit it; run.ts verifies
  const { run } = await import("./run.ts");
  Deno.exit(await run(Deno.args, Deno.env.toObject(), signals));
}
