#!/usr/bin/env bash
# The whole test suite: formatting, lints, then every test. Starts what the tests need.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo fmt --all -- --check
cargo clippy --all-targets -- -D warnings
cargo test --all-targets
