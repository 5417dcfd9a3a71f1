#!/bin/sh
# Demo traffic for `docker compose --profile mock up`: through nginx to the cluster, about two
# requests a second, mixing the OpenAI and Anthropic APIs, plain and streaming, and the
# built-in demo model. Open access (the demo config has no client keys), so no key is sent.
set -u
gateway="http://nginx:8080"
until curl -fsS -o /dev/null "$gateway/readyz"; do sleep 1; done
i=0
while true; do
    i=$((i + 1))
    case $((i % 4)) in
        0) curl -sS -o /dev/null "$gateway/v1/chat/completions" -H 'content-type: application/json' \
               -d '{"model":"demo-gpt","messages":[{"role":"user","content":"Say hello"}]}' ;;
        1) curl -sS -o /dev/null -N "$gateway/v1/chat/completions" -H 'content-type: application/json' \
               -d '{"model":"demo-gpt","stream":true,"messages":[{"role":"user","content":"Count to ten"}]}' ;;
        2) curl -sS -o /dev/null -N "$gateway/v1/messages" -H 'content-type: application/json' \
               -H 'anthropic-version: 2023-06-01' \
               -d '{"model":"demo-claude","max_tokens":64,"stream":true,"messages":[{"role":"user","content":"Hi"}]}' ;;
        3) curl -sS -o /dev/null "$gateway/v1/chat/completions" -H 'content-type: application/json' \
               -d '{"model":"starling-demo","messages":[{"role":"user","content":"ping"}]}' ;;
    esac
    sleep 0.5
done
