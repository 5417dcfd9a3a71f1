#!/usr/bin/env bash
# Installs what the Jepsen-style fault tests need, from Debian's packages, saying what it
# installs: iproute2 (ip, tc), nftables (partitions), libfaketime (clock skew) and a font for
# the report's plot. Needs root (as the tests themselves do).
set -euo pipefail

missing=()
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
command -v tc >/dev/null 2>&1 || missing+=(iproute2)
command -v nft >/dev/null 2>&1 || missing+=(nftables)
[ -e /usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1 ] || missing+=(libfaketime)
[ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || missing+=(fonts-dejavu-core)

if [ ${#missing[@]} -eq 0 ]; then
    echo "jepsen-setup: iproute2, nftables, libfaketime and fonts-dejavu-core are installed"
    exit 0
fi
mapfile -t packages < <(printf '%s\n' "${missing[@]}" | sort -u)
echo "jepsen-setup: installing ${packages[*]} from Debian"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "${packages[@]}" >/dev/null
echo "jepsen-setup: installed ${packages[*]}"
