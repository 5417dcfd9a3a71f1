#!/usr/bin/env bash
# Checks deploy/ as far as a machine without a container engine or Kubernetes allows:
#
#   deploy/check.sh
#
# - every YAML, JSON and TOML file under deploy/ parses;
# - promtool: check config, check rules, and the alert unit tests (prometheus/tests/);
# - the compose file against the compose-spec schema (check-jsonschema's vendored copy), and
#   its wiring (seeds, advertised addresses, mounts, ports, nginx and Prometheus targets);
# - the Kubernetes manifests rendered by `kubectl kustomize` against the Kubernetes API
#   schemas (kubernetes-validate --strict; the ServiceMonitor CRD has no schema there, so
#   only its wiring is checked), grace periods, probes and ports;
# - the systemd unit (`systemd-analyze verify` where systemd is installed, grace period);
# - every shipped node config and command line against the real `starling` binary
#   (`--print-config`), and the container health probe against a live node and a dead port.
#
# Builds its own venv under target/deploy-venv (re-installed when requirements.txt changes).
# Needs the binaries: `cargo build -p starling --bin starling -p starling-bench --bin
# starling-mock` (scripts/test.sh builds the workspace first). Exits non-zero on a failure.
# Env: CARGO_TARGET_DIR, STARLING_BIN_DIR (default $CARGO_TARGET_DIR/debug).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
target="${CARGO_TARGET_DIR:-$repo/target}"
venv="$target/deploy-venv"
"$repo/scripts/venv.sh" "$venv" "$here/requirements.txt"
export STARLING_BIN_DIR="${STARLING_BIN_DIR:-$target/debug}"
exec "$venv/bin/python" "$here/check.py" "$@"
