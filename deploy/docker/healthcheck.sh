#!/bin/bash
# The container's health probe: GET /healthz on the node's own HTTP port, with nothing but
# bash. The runtime image carries no curl or wget (fewer packages to patch), and `starling`
# has no probe subcommand; bash's /dev/tcp opens the connection, and the status line of the
# answer decides. Exits 0 on a 200, 1 otherwise (refused, no answer within 3 s, other status).
#
#   STARLING_HEALTH_ADDR  host:port to probe (default 127.0.0.1:8080, the port of
#                         `server.listen`; `server.metrics_listen` serves /healthz too)
#   STARLING_HEALTH_PATH  path (default /healthz; /readyz answers 503 while draining)
set -u
addr="${STARLING_HEALTH_ADDR:-127.0.0.1:8080}"
path="${STARLING_HEALTH_PATH:-/healthz}"
host="${addr%:*}"
port="${addr##*:}"
# The probe targets the node's own loopback listener, where connect either succeeds or is
# refused at once; `read -t` bounds the wait for an answer from a node that accepts but hangs.
if ! exec 3<>"/dev/tcp/${host}/${port}"; then
    echo "unhealthy: nothing listens on ${addr}" >&2
    exit 1
fi
printf 'GET %s HTTP/1.0\r\nHost: %s\r\nConnection: close\r\n\r\n' "$path" "$host" >&3
if ! IFS= read -r -t 3 status <&3; then
    echo "unhealthy: no answer from ${addr}${path} within 3 s" >&2
    exit 1
fi
status="${status%$'\r'}"
case "$status" in
    "HTTP/1."?" 200"*) exit 0 ;;
    *) echo "unhealthy: ${addr}${path} answered ${status}" >&2; exit 1 ;;
esac
