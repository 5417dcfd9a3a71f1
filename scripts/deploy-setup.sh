#!/usr/bin/env bash
# Installs what the deploy/ checks need from Debian's packages: prometheus (the server, for the
# scrape test, and promtool, for `promtool check`/`test rules`). Needs root.
#
# The package's maintainer scripts would start a prometheus service on :9090; a policy-rc.d
# that answers 101 ("action forbidden") stops invoke-rc.d from starting it, so the test suite
# owns every Prometheus it runs and no port is taken behind its back. An existing policy-rc.d
# is left as it was.
set -euo pipefail

if command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; then
    echo "deploy-setup: prometheus and promtool are installed"
    exit 0
fi
echo "deploy-setup: installing prometheus (server and promtool) from Debian"
policy=/usr/sbin/policy-rc.d
added_policy=0
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy"
    chmod 0755 "$policy"
    added_policy=1
fi
cleanup() { if [ "$added_policy" = 1 ]; then rm -f "$policy"; fi; }
trap cleanup EXIT
export DEBIAN_FRONTEND=noninteractive
apt-get -o DPkg::Lock::Timeout=300 update -qq
apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends prometheus >/dev/null
echo "deploy-setup: installed $(prometheus --version 2>&1 | head -1)"
