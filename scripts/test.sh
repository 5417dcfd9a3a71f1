#!/usr/bin/env bash
# The whole test suite, as CI runs it: formatting, lints, the Rust tests, the deploy/ checks
# (deploy/check.sh), a short Jepsen-style fault run (as root), and the official OpenAI and
# Anthropic Python SDKs against a live node (tests/sdk/run.sh builds their venv).
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
echo "== cargo test"
# The bench smoke test and the Jepsen run start the workspace's binaries: build them first.
cargo build --workspace --bins
# As root, install what the tests need up front: the fault tests' tools and the font the
# bench's and the fault tests' plots draw with; Prometheus (server and promtool) for the
# deploy/ tests (node/gateway/tests/deploy.rs, deploy/check.sh), without starting its service.
if [ "$(id -u)" -eq 0 ]; then
    scripts/jepsen-setup.sh
    scripts/deploy-setup.sh
fi
cargo test --workspace
echo "== deploy/ checks"
# Schemas, wiring, promtool, and the shipped command lines and health probe against the real
# binaries (builds its venv under target/deploy-venv).
deploy/check.sh
echo "== Jepsen-style fault tests"
if [ "$(id -u)" -eq 0 ]; then
    # About two minutes of every nemesis and workload on five nodes; fails on any violation.
    target/debug/starling-jepsen run --seed 1 --time-limit 100s --nemesis all --workload all \
        --report target/jepsen/suite
    # The checkers can fail: nodes that skip the rights check overspend, and the budget
    # checker must say so.
    target/debug/starling-jepsen run --seed 2 --time-limit 30s --nemesis none --workload budget \
        --unsafe-skip-rights-check --expect-violation budget-safety --report target/jepsen/broken
else
    echo "SKIPPED: the Jepsen-style fault tests need root (network namespaces); run scripts/test.sh as root"
fi
echo "== SDK tests"
tests/sdk/run.sh
