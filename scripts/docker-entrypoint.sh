#!/bin/sh
# Container entrypoint equivalent to the C original's Docker-init.sh: its environment
# (GATEWAY_LISTEN_QUEUE, ZMQ_PUBLISHER_PORT, DEBUG) mapped onto the adaptor's own ADAPTOR_*
# variables, which the adaptor reads itself. Extra arguments are passed through.
set -eu
export ADAPTOR_BIND="${ADAPTOR_BIND:-${GATEWAY_LISTEN_QUEUE:-ipc://@nginx_queue_listen}}"
if [ -n "${ZMQ_PUBLISHER_PORT:-}" ]; then export ADAPTOR_PUBLISH="${ADAPTOR_PUBLISH:-$ZMQ_PUBLISHER_PORT}"; fi
if [ "${DEBUG:-}" = "true" ]; then export ADAPTOR_DEBUG=true; fi
exec "${ADAPTOR_BIN:-/usr/local/bin/adaptor}" "$@"
