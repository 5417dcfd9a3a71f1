#!/usr/bin/env bash
# Creates the Python venv VENV if missing and installs REQUIREMENTS into it, again only when
# that file changed (its SHA-256 is kept in VENV/.requirements.sha256).
#
#   scripts/venv.sh VENV REQUIREMENTS
#
# Shared by tests/sdk/run.sh and deploy/check.sh.
set -euo pipefail

venv="$1"
req="$2"
stamp="$venv/.requirements.sha256"
want="$(sha256sum "$req" | cut -d' ' -f1)"
if [[ ! -x "$venv/bin/python" ]]; then
    python3 -m venv "$venv"
fi
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req"
    echo "$want" > "$stamp"
fi
