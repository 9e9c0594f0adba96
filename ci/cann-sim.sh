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
# Three simulated devices, one per SoC family, each on its own capability
# table: Atlas A2 (910B), the training series (910A: no bf16,
# WeightQuantBatchMatmulV2, RmsNorm or RotaryPositionEmbedding, f32
# products in f16) and the inference series (310P: no bf16, LayerNorm or
# RotaryPositionEmbedding, f32 products in f16).
export GLMHAL_CANN_SIM_SOC=Ascend910B3-sim,Ascend910A-sim,Ascend310P3-sim
"$target/glmhal" devices | grep -A3 '^cann'
socs=(--backend cann:0 --backend cann:1 --backend cann:2)
# The whole suite and both model checks on each, side by side; bf16 cases
# apart, since two of the three have none. The backend has no
# mixture-of-experts kernels yet: those ops are left out here and checked
# below to be reported unsupported, never run.
moe=(mat_mul_id moe_select moe_weights)
"$target/glmhal" conformance "${socs[@]}" --require-all --without-dtype bf16 \
  "${moe[@]/#/--without-op=}" \
  --json "$out/conformance-cann-sim.json" --markdown "$out/conformance-cann-sim.md" \
  2>"$out/cann-sim.log" | tee "$out/conformance-cann-sim.txt"
"$target/glmhal" conformance "${socs[@]}" --dtype bf16 "${moe[@]/#/--without-op=}" \
  --json "$out/conformance-cann-sim-bf16.json" \
  2>>"$out/cann-sim.log" | tail -3
# Every bf16 case passes on the 910B and is reported unsupported, never run,
# on the other two.
python3 - "$out/conformance-cann-sim-bf16.json" <<'PY'
import json, sys
results = json.load(open(sys.argv[1]))["results"]
expected = {"cann:0": "pass", "cann:1": "unsupported", "cann:2": "unsupported"}
wrong = [(r["backend"], r["case"], r["status"]) for r in results if r["status"] != expected[r["backend"]]]
assert results and not wrong, f"bf16 cases not as each SoC allows: {wrong[:5]}"
print(f"bf16: {len(results)} results as each SoC allows")
PY
"$target/glmhal" conformance --backend cann:0 --skip-models "${moe[@]/#/--op=}" \
  --json "$out/conformance-cann-sim-moe.json" 2>>"$out/cann-sim.log" | tail -1
python3 - "$out/conformance-cann-sim-moe.json" <<'PY'
import json, sys
results = json.load(open(sys.argv[1]))["results"]
wrong = [(r["case"], r["status"]) for r in results if r["status"] != "unsupported"]
assert results and not wrong, f"MoE cases not reported unsupported: {wrong[:5]}"
print(f"moe: {len(results)} cases reported unsupported")
PY
# The backend's own tests beyond the op cases (the CLI run above covers
# those): copies and non-finite argmax rows; then indices outside a table or
# cache, which the backend hands to aclnn as they come (the simulator's
# violations for those go to a log of their own).
GLMHAL_REQUIRE_BACKENDS=cann cargo test --locked -q -p glmhal-cann --test conformance -- \
  copies_keep_neighbouring_bytes non_finite_rows_are_reported 2>>"$out/cann-sim.log"
GLMHAL_REQUIRE_BACKENDS=cann cargo test --locked -q -p glmhal-cann --test conformance -- \
  out_of_range_indices_are_reported 2>"$out/cann-sim-out-of-range.log"
if grep -q 'cann-sim violation' "$out/cann-sim.log"; then
  echo "the CANN backend broke the ACL contract:" >&2
  grep 'cann-sim violation' "$out/cann-sim.log" >&2
  exit 1
fi
