#!/usr/bin/env bash
# The whole test suite, as CI runs it: formatting, lints, the Rust tests, and the official
# OpenAI and Anthropic Python SDKs against a live node (tests/sdk/run.sh builds their venv).
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
echo "== cargo test"
cargo test --workspace
echo "== SDK tests"
cargo build --workspace --bins
tests/sdk/run.sh
