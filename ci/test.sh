#!/usr/bin/env bash
# The project's test command (README "Test"): every unit, integration and
# conformance test, then the conformance run whose reports CI keeps.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo test --workspace --locked

# The same binary the tests used (test profile: optimized, with debug assertions).
mkdir -p reports
cargo run --locked --profile test -q -p glmhal -- conformance \
  --json reports/conformance.json --markdown reports/conformance.md
