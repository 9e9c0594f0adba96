#!/usr/bin/env bash
# The check to run on a machine with an NVIDIA GPU and a prebuilt glmhal
# binary (that machine may have no crates registry): devices, conformance on
# cuda (ops and the model fixtures) and benchmarks of the bench-1.3b and
# glm-4-9b shapes in bf16 and Q8_0, the products again on the kernel tree
# instead of the vendor BLAS, and batch-1 decode against transformers (eager,
# bf16) on one synthetic checkpoint where torch is installed; every result
# as JSON in RESULTS_DIR.
# Each step has its own time limit so the whole run stays within 8 minutes.
#
# Usage: GLMHAL=path/to/glmhal ci/device-check.sh RESULTS_DIR [BACKEND]
set -uo pipefail
out="${1:?usage: ci/device-check.sh RESULTS_DIR [BACKEND]}"
backend="${2:-cuda}"
glmhal="${GLMHAL:-./target/release/glmhal}"
# shellcheck source=ci/steps.sh
source "$(dirname "$0")/steps.sh"

command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader >>"$summary" 2>&1

# The JSON alone (a driver's warnings on stderr go to devices.log).
step devices 30 bash -c '"$0" devices --json >"$1"' "$glmhal" "$out/devices.json"
step conformance 150 "$glmhal" conformance --backend "$backend" --require-all \
  --json "$out/conformance.json" --markdown "$out/conformance.md"
# The same products on the kernel tree instead of the vendor BLAS, so both paths are checked.
GLMHAL_GPU_GEMM=kernels step conformance-kernel-gemm 60 "$glmhal" conformance --backend "$backend" \
  --require-all --op mat_mul --op batched_mat_mul --json "$out/conformance-kernel-gemm.json"
for preset in bench-1.3b glm-4-9b; do
  for weights in bf16 q8_0; do
    step "bench-$preset-$weights" 75 "$glmhal" bench --preset "$preset" --backend "$backend" \
      --weights "$weights" --quick --contexts 128,2048,32768 --batch 1,4,16 \
      --json "$out/bench-$preset-$weights.json"
  done
done
# transformers' eager decode of the same synthetic checkpoint, where torch is installed.
ckpt="${TMPDIR:-/tmp}/glmhal-device-check-bench-1.3b"
step synth-bench-1.3b 90 "$glmhal" synth --preset bench-1.3b --dtype bf16 --out "$ckpt"
step bench-model-bench-1.3b 90 "$glmhal" bench --model "$ckpt" --backend "$backend" \
  --weights bf16 --quick --skip-ops --batch 1 --prompt 64 --json "$out/bench-model-bench-1.3b.json"
if python3 -c "import torch, transformers" >/dev/null 2>&1; then
  step transformers-bench-1.3b 150 python3 "$(dirname "$0")/transformers-decode.py" "$ckpt" \
    "$out/bench-model-bench-1.3b.json" "$out/transformers-bench-1.3b.json"
else
  echo "transformers-bench-1.3b: skipped (python3 has no torch or transformers)" | tee -a "$summary"
fi
rm -rf "$ckpt"
report "$out"/bench-*.json "$out/conformance.json"
echo "results in $out (summary: $summary)"
exit "$failed"
