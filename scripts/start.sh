#!/bin/sh
# The adaptor from source, as one process: `deno task start` keeps a `deno task` parent (~22 MiB)
# alive beside it, and signals reach the adaptor through it. Same flags as deno.json's "start"
# task (tests/examples_test.ts checks that they match). Usage: scripts/start.sh -p … -b …
export DENO_NO_UPDATE_CHECK=1 # no update check at each start (a thread and ~1.4 MiB)
exec "${DENO:-deno}" run --allow-ffi --allow-read --allow-write --allow-env --allow-net --no-code-cache --v8-flags=--no-opt,--no-maglev,--max-semi-space-size=1,--min-semi-space-size=1,--no-sparkplug "$(dirname "$0")/../src/main.ts" "$@"
