#!/bin/sh
# Demo traffic for `docker compose --profile mock up`: through nginx to the cluster, about two
# requests a second, mixing the OpenAI and Anthropic APIs, plain and streaming, and the
# built-in demo model. Clients of a cluster need a key, so it first creates a virtual key
# through the admin API (STARLING_ADMIN_TOKEN from the env file) and sends it with every call.
# GATEWAY overrides the address; REQUESTS=N stops after N requests, failing if any failed
# (deploy/check.sh runs it that way against a live node).
set -u
gateway="${GATEWAY:-http://nginx:8080}"
requests="${REQUESTS:-0}"
failed=0
until curl -fsS -o /dev/null "$gateway/readyz"; do sleep 1; done
key=""
until [ -n "$key" ]; do
    key=$(curl -fsS "$gateway/admin/v1/keys" -H "authorization: Bearer $STARLING_ADMIN_TOKEN" \
              -H 'content-type: application/json' -d '{"name":"compose-demo-traffic"}' |
          sed -n 's/.*"key":"\([^"]*\)".*/\1/p')
    [ -n "$key" ] || sleep 1
done
auth="authorization: Bearer $key"
i=0
while [ "$requests" -eq 0 ] || [ "$i" -lt "$requests" ]; do
    i=$((i + 1))
    case $((i % 4)) in
        1) curl -fsS -o /dev/null "$gateway/v1/chat/completions" -H 'content-type: application/json' -H "$auth" \
               -d '{"model":"starling-demo","messages":[{"role":"user","content":"ping"}]}' ;;
        2) curl -fsS -o /dev/null "$gateway/v1/chat/completions" -H 'content-type: application/json' -H "$auth" \
               -d '{"model":"demo-gpt","messages":[{"role":"user","content":"Say hello"}]}' ;;
        3) curl -fsS -o /dev/null -N "$gateway/v1/chat/completions" -H 'content-type: application/json' -H "$auth" \
               -d '{"model":"demo-gpt","stream":true,"messages":[{"role":"user","content":"Count to ten"}]}' ;;
        0) curl -fsS -o /dev/null -N "$gateway/v1/messages" -H 'content-type: application/json' \
               -H 'anthropic-version: 2023-06-01' -H "$auth" \
               -d '{"model":"demo-claude","max_tokens":64,"stream":true,"messages":[{"role":"user","content":"Hi"}]}' ;;
    esac || failed=$((failed + 1))
    [ "$requests" -ne 0 ] || sleep 0.5
done
[ "$failed" -eq 0 ]
