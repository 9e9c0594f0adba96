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
# wgpu again through its GL backend (llvmpipe where Mesa is installed).
if WGPU_BACKEND=gl cargo run --locked --profile test -q -p glmhal -- devices --json 2>/dev/null \
    | grep -A1 '"backend": "wgpu"' | grep -q '"status": "available"'; then
  WGPU_BACKEND=gl cargo run --locked --profile test -q -p glmhal -- conformance --backend wgpu --require-all \
    --json reports/conformance-wgpu-gl.json --markdown reports/conformance-wgpu-gl.md
fi
