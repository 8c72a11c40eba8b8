#!/bin/sh
# The adaptor from source, as one process: `deno task start` keeps a `deno task` parent (~22 MiB)
# alive beside it, and signals reach the adaptor through it. Same flags as deno.json's "start"
# task (tests/start_script_test.ts checks that they match). Usage: scripts/start.sh -p … -b …
root="$(dirname "$0")/.."
# npm packages come from node_modules/ as deno.lock pinned them (--node-modules-dir=manual: not
# resolved again at each start); the first start installs them.
[ -d "$root/node_modules/.deno" ] || (cd "$root" && "${DENO:-deno}" install --frozen >&2) || exit 1
export DENO_NO_UPDATE_CHECK=1 # no update check at each start (a thread and ~1.4 MiB)
exec "${DENO:-deno}" run --allow-ffi --allow-read --allow-write --allow-env --allow-net --no-code-cache --node-modules-dir=manual --v8-flags=--no-opt,--no-maglev,--max-semi-space-size=1,--min-semi-space-size=1,--no-sparkplug "$root/src/main.ts" "$@"
