/**
 * Prints, as one JSON line, the path of the zeromq npm addon (the libzmq build the adaptor
 * calls through FFI) and the libzmq version it reports. Run by scripts/bench.ts in its own
 * process, with --allow-all (reading /proc/self/maps needs it), and independent of src/: it
 * loads the addon the way the adaptor does (require("zeromq")) and finds the mapped file in
 * /proc/self/maps.
 */
import { createRequire } from "node:module";

const zmq = createRequire(import.meta.url)("zeromq") as { version?: string };
const maps = Deno.readTextFileSync("/proc/self/maps").split("\n");
const line = maps.find((l) => l.endsWith("addon.node") && l.includes("zeromq"));
const path = line ? line.slice(line.indexOf("/")) : null;
console.log(JSON.stringify({ path, version: zmq.version ?? null }));
