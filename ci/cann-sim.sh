#!/usr/bin/env bash
# Builds the ACL simulator, lays it out as a CANN toolkit (lib64/
# libascendcl.so, libnnopbase.so, libopapi.so: links to one library, so the
# three share its state, as the real ones share a process), and runs the
# CANN backend's conformance against it. Any simulator violation fails.
# Usage: ci/cann-sim.sh [REPORT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-reports}"
mkdir -p "$out"
cargo build --locked --profile test -q -p glmhal-cann-sim -p glmhal
cargo test --locked --no-run -q -p glmhal-cann --test conformance
target="${CARGO_TARGET_DIR:-target}/debug"
toolkit="$(mktemp -d)/ascend-toolkit"
mkdir -p "$toolkit/lib64"
for lib in libascendcl.so libnnopbase.so libopapi.so; do
  ln -s "$(realpath "$target/libglmhal_cann_sim.so")" "$toolkit/lib64/$lib"
done
export ASCEND_TOOLKIT_HOME="$toolkit"
"$target/glmhal" devices | grep -A3 '^cann'
"$target/glmhal" conformance --backend cann --require-all --json "$out/conformance-cann-sim.json" \
  --markdown "$out/conformance-cann-sim.md" 2>"$out/cann-sim.log" | tee "$out/conformance-cann-sim.txt"
# The backend's own tests beyond the op cases (the CLI run above covers
# those): copies and non-finite argmax rows; then indices outside a table or
# cache, which the backend hands to aclnn as they come (the simulator's
# violations for those go to a log of their own).
GLMHAL_REQUIRE_BACKENDS=cann cargo test --locked -q -p glmhal-cann --test conformance -- \
  copies_keep_neighbouring_bytes non_finite_rows_are_reported 2>>"$out/cann-sim.log"
GLMHAL_REQUIRE_BACKENDS=cann cargo test --locked -q -p glmhal-cann --test conformance -- \
  out_of_range_indices_are_reported 2>"$out/cann-sim-out-of-range.log"
# Per-SoC paths: a 910 training part has no WeightQuantBatchMatmulV2 (Q8_0
# products are dequantized instead); a 310P has no bf16 (reported unsupported).
GLMHAL_CANN_SIM_SOC=Ascend910A-sim "$target/glmhal" conformance --backend cann --op mat_mul \
  --dtype q8_0 --require-all 2>>"$out/cann-sim.log" | tail -3
GLMHAL_CANN_SIM_SOC=Ascend310P3-sim "$target/glmhal" conformance --backend cann --op mat_mul \
  --op attention --dtype bf16 --json "$out/conformance-cann-sim-310p.json" 2>>"$out/cann-sim.log" | tail -3
if grep -q '"status": *"pass"' "$out/conformance-cann-sim-310p.json"; then
  echo "a bf16 case ran on a simulated 310P, which has no bf16" >&2
  exit 1
fi
if grep -q 'cann-sim violation' "$out/cann-sim.log"; then
  echo "the CANN backend broke the ACL contract:" >&2
  grep 'cann-sim violation' "$out/cann-sim.log" >&2
  exit 1
fi
