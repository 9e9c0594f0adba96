#!/usr/bin/env bash
# The check a user with an Ascend machine runs and sends back: what glmhal
# sees (SoC, memory, toolkit), the conformance suite and both model checks
# on the NPU with --require-all (bf16 left out on parts without it), the
# products' tightness over 3 seeds, and benchmarks of the bench-1.3b shapes
# in f16 and Q8_0 against the CPU; every result as JSON in RESULTS_DIR, with
# an HTML report. Run time: at most 37 minutes, the sum of the steps' own
# limits (not yet measured on Ascend hardware).
#
# Usage: source /usr/local/Ascend/ascend-toolkit/set_env.sh
#        GLMHAL=path/to/glmhal ci/ascend-check.sh RESULTS_DIR
set -uo pipefail
out="${1:?usage: ci/ascend-check.sh RESULTS_DIR}"
glmhal="${GLMHAL:-./target/release/glmhal}"
# shellcheck source=ci/steps.sh
source "$(dirname "$0")/steps.sh"

{
  echo "toolkit: ${ASCEND_TOOLKIT_HOME:-${ASCEND_HOME_PATH:-/usr/local/Ascend/ascend-toolkit/latest}}"
  command -v npu-smi >/dev/null && npu-smi info
} >>"$summary" 2>&1

# The JSON alone (a driver's warnings on stderr go to devices.log).
step devices 60 bash -c '"$0" devices --json >"$1"' "$glmhal" "$out/devices.json"
# What the CANN devices are: "none", "bf16" (every one has it) or "no-bf16".
cann=$(python3 - "$out/devices.json" <<'PY' 2>/dev/null || echo none
import json, sys
cann = [d for b in json.load(open(sys.argv[1])) if b["backend"] == "cann" for d in b.get("devices") or []]
print("none" if not cann else "bf16" if all("bf16" in d["features"] for d in cann) else "no-bf16")
PY
)
if [ "$cann" = none ]; then
  echo "no CANN device: see $out/devices.json for the reason" | tee -a "$summary"
  exit 1
fi
# Parts without bf16 (910A, 310P) report those cases unsupported; leave them
# out so --require-all holds everything else to the full suite.
without=()
[ "$cann" = bf16 ] || without=(--without-dtype bf16)
step conformance 900 "$glmhal" conformance --backend cann --require-all "${without[@]}" \
  --json "$out/conformance.json" --markdown "$out/conformance.md"
step tightness 600 "$glmhal" conformance --backend cann --op mat_mul --op attention \
  "${without[@]}" --skip-large --seeds 3 --json "$out/tightness.json"
for weights in f16 q8_0; do
  step "bench-$weights" 300 "$glmhal" bench --preset bench-1.3b --backend cann --backend cpu \
    --weights "$weights" --quick --contexts 128,2048 --batch 1,4 --json "$out/bench-$weights.json"
done
report "$out"/bench-*.json "$out/conformance.json"
echo "results in $out (summary: $summary); please send the whole directory"
exit "$failed"
