#!/usr/bin/env bash
# The tests after `.ci/run`'s set-up (README "On a fresh machine" runs `.ci/run`): every
# unit, integration and conformance test, then the conformance run whose reports CI keeps.
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

# Every instruction-set level of the CPU kernels this CPU can run gets the
# CPU unit tests and the whole CPU conformance (the runs above took the best
# level); a level the CPU lacks is named as not run.
cpu_flags=" $(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null | cut -d: -f2) "
has() { for f in "$@"; do [[ "$cpu_flags" == *" $f "* ]] || return 1; done; }
levels=(portable)
best=portable
if has avx2 fma f16c; then
  levels+=(avx2)
  best=avx2
else
  echo "CPU kernels not run: avx2 (this CPU lacks avx2, fma or f16c)"
fi
if has avx512f avx512bw avx512vl avx512_vnni; then
  best=avx512
else
  echo "CPU kernels not run: avx512 (this CPU lacks avx512f, avx512bw, avx512vl or avx512_vnni)"
fi
echo "CPU kernels run: ${levels[*]} $([ "$best" = avx512 ] && echo avx512) (the default runs took $best)"
for level in "${levels[@]}"; do
  [ "$level" = "$best" ] && continue
  GLMHAL_CPU_ISA=$level cargo test --locked -q -p glmhal-cpu
  GLMHAL_CPU_ISA=$level cargo run --locked --profile test -q -p glmhal -- conformance \
    --backend cpu --require-all --skip-models --json "reports/conformance-cpu-$level.json"
done
# Q8_0/Q4_0 products with int16 activations in decode and f32 in prefill (the default is int8).
GLMHAL_CPU_ACTIVATIONS=int16 cargo run --locked --profile test -q -p glmhal -- conformance \
  --backend cpu --op mat_mul --require-all
# The mutant catalogue against the CPU backend (the tests fail on a survivor too).
cargo run --locked --profile test -q -p glmhal -- conformance --backend cpu --skip-large \
  --mutants --markdown reports/mutants.md --json reports/mutants.json | tail -1

# The CUDA/HIP kernel tree compiled for real for NVIDIA A100/H100 and AMD
# MI50/MI210-class (and Hygon DCU's gfx9) targets: any compile error fails.
glmhal() { cargo run --locked --profile test -q -p glmhal -- "$@"; }
glmhal kernels compile --target cuda:sm_80 --target cuda:sm_90 \
  --target hip:gfx906 --target hip:gfx90a --out reports/kernels | tee reports/kernels.txt

# The CANN backend against the strict ACL simulator (ops and models).
bash ci/cann-sim.sh reports

# Benchmarks and the hardware-regression mode. Every backend that runs here
# is measured on the tiny model's shapes; `glmhal ci` runs on the CPU.
bench_backends=(--backend cpu)
for gpu_api in wgpu opencl; do
  if grep -q "\"$gpu_api\"" <(glmhal devices --json 2>/dev/null | grep -B2 '"status": "available"'); then
    bench_backends+=(--backend "$gpu_api")
  fi
done
glmhal bench --preset tiny "${bench_backends[@]}" --quick --json reports/bench.json
rm -f reports/ci-baseline.json
# One CPU thread: a single-threaded timing suffers far less when something
# else runs on this shared 2-core machine.
export GLMHAL_CPU_THREADS=1
glmhal ci --backend cpu --quick --baseline reports/ci-baseline.json --update-baseline >/dev/null
# Round trip against the baseline just made. The machine is still noisy, so
# a metric may be up to 4× slower here before it counts (on a dedicated CI
# runner the default 25% applies).
glmhal ci --backend cpu --quick --speed-tolerance 3.0 --baseline reports/ci-baseline.json \
  --json reports/ci.json --junit reports/ci.xml --markdown reports/ci.md >/dev/null
set +e
GLMHAL_INJECT_DELAY=mat_mul:30 glmhal ci --backend cpu --quick --speed-tolerance 3.0 \
  --baseline reports/ci-baseline.json --json reports/ci-planted.json \
  --junit reports/ci-planted.xml >/dev/null 2>reports/ci-planted.log
code=$?
set -e
if [ "$code" -ne 3 ]; then
  echo "planted slowdown: expected exit code 3 (speed regression), got $code" >&2
  cat reports/ci-planted.log >&2
  exit 1
fi
grep -q '<failure' reports/ci-planted.xml
unset GLMHAL_CPU_THREADS
echo "planted slowdown reported as a speed regression (exit 3)"
# One HTML page from all of it, checked in headless Chromium.
glmhal report --in reports/bench.json --in reports/ci-planted.json \
  --in reports/conformance.json --out reports/report.html
bash ci/check-report.sh reports/report.html
