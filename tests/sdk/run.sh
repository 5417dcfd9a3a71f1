#!/usr/bin/env bash
# Runs the Python SDK suite against starling-mock (direct) and the gateway (gateway mode).
#
#   tests/sdk/run.sh [pytest args...]
#
# Creates or updates the venv at .venv-sdk (only when requirements.txt changed), builds the
# binaries unless STARLING_SDK_BUILD=0, and exits non-zero when a test fails.
# Env: STARLING_SDK_MODES (default direct,gateway), STARLING_BIN_DIR, CARGO_TARGET_DIR,
#      STARLING_MOCK_BIN, STARLING_GATEWAY_BIN (see conftest.py).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
venv="${STARLING_SDK_VENV:-$repo/.venv-sdk}"
"$repo/scripts/venv.sh" "$venv" "$here/requirements.txt"

if [[ "${STARLING_SDK_BUILD:-1}" != "0" ]]; then
    (cd "$repo" && cargo build --quiet -p starling-bench --bin starling-mock -p starling --bin starling)
fi

cd "$here"
exec "$venv/bin/python" -m pytest -q "$@"
