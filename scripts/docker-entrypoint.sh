#!/bin/sh
# Container entrypoint equivalent to the C original's Docker-init.sh: its environment mapped
# onto the adaptor's own ADAPTOR_* variables, which the adaptor reads itself.
#   GATEWAY_LISTEN_QUEUE  XSUB endpoint (-b); default ipc://@nginx_queue_listen (abstract: no file)
#   ZMQ_PUBLISHER_PORT    XPUB endpoint (-p), e.g. tcp://0.0.0.0:6001; a bare port number such
#                         as 6001 means tcp://0.0.0.0:6001 (the original passed it to -p as is)
#   DEBUG=true            -d
# An ADAPTOR_* variable set as well wins; so do flags given as arguments, which are passed
# through. ADAPTOR_METRICS=0.0.0.0:6002 serves /metrics and /healthz (publish the port).
# exec: the adaptor becomes the container's main process and gets its SIGTERM directly.
set -eu
export ADAPTOR_BIND="${ADAPTOR_BIND:-${GATEWAY_LISTEN_QUEUE:-ipc://@nginx_queue_listen}}"
if [ -n "${ZMQ_PUBLISHER_PORT:-}" ]; then
  case "$ZMQ_PUBLISHER_PORT" in
    *[!0-9]*) publish="$ZMQ_PUBLISHER_PORT" ;;
    *) publish="tcp://0.0.0.0:$ZMQ_PUBLISHER_PORT" ;;
  esac
  export ADAPTOR_PUBLISH="${ADAPTOR_PUBLISH:-$publish}"
fi
if [ "${DEBUG:-}" = "true" ]; then export ADAPTOR_DEBUG="${ADAPTOR_DEBUG:-true}"; fi
exec "${ADAPTOR_BIN:-/usr/local/bin/adaptor}" "$@"
