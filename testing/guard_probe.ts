/**
 * A process for guard_test.ts: installs the rejection guard, creates a file standing for the
 * adaptor's socket files, then makes `Deno.args[0]` happen ("rejection": two unhandled
 * rejections, "throw": an error thrown from a timer). On the guard's failure it runs its
 * clean-up (removes the file), as the adaptor's stop does, and exits 1. `Deno.args[2]` "json"
 * logs JSON lines.
 */

import { installRejectionGuard } from "../src/ops/guard.ts";
import { setupLogging } from "../src/ops/log.ts";

const [what, path, format] = Deno.args;
setupLogging({ level: "info", format: format === "json" ? "json" : "text" });
const guard = installRejectionGuard();
Deno.writeTextFileSync(path, "");
if (what === "rejection") {
  Promise.reject(new Error("Http: Error: Too many open files (os error 24)\n    at fake stack"));
  Promise.reject("second");
} else {
  setTimeout(() => {
    throw new TypeError("boom");
  }, 10);
}
const why = await guard.failure;
Deno.removeSync(path);
console.log(`stopped: ${why}; caught ${guard.caught}`);
Deno.exit(1);
