#!/usr/bin/env python3
"""glmhal's CPU backend against llama.cpp on the same GGUF files, the same
cores and the same thread count, run alternately; prints the median of each
engine and their ratio per dtype for prefill and decode, as Markdown.

    python3 scripts/peer_llama_cpp.py target/release/glmhal [--preset bench-1.3b]
        [--threads 2] [--runs 3] [--prompt 64] [--new-tokens 32] [--dtypes f16,q8_0,q4_0]

`llama-cpp-python` (which builds llama.cpp from source) is installed into
`.venv-peers/` next to the repository root when it is missing, and the
script re-runs itself there. glmhal is measured with `glmhal bench --model
FILE --skip-ops` (prefill of the prompt in one step, batch-1 decode steps);
llama.cpp with `Llama.eval` on the same prompt length and one token per
decode step. The GGUF files are written one at a time into a temporary
directory under `GLMHAL_PEER_TMP` (default: the system's); bench-1.3b's F16
file needs 2.5 GB free there. A developer and release tool: CI does not run it.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv-peers"


def ensure_llama_cpp():
    try:
        import llama_cpp  # noqa: F401
        return
    except ImportError:
        pass
    python = VENV / "bin" / "python"
    # A venv's python is usually a symlink to the system's, so compare the
    # prefix, not the resolved executable.
    if Path(sys.prefix).resolve() == VENV.resolve():
        sys.exit("llama-cpp-python is not importable even inside .venv-peers")
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    probe = subprocess.run([str(python), "-c", "import llama_cpp"], capture_output=True)
    if probe.returncode != 0:
        print("installing llama-cpp-python into .venv-peers (builds llama.cpp; minutes)", file=sys.stderr)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "llama-cpp-python"], check=True)
    os.execv(str(python), [str(python), *sys.argv])


def machine():
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} logical cores"


def run_glmhal(args, what):
    """Runs glmhal; on failure stops with its own error message, not a traceback."""
    try:
        run = subprocess.run(args, capture_output=True, text=True)
    except OSError as e:
        sys.exit(f"{what}: cannot run {args[0]}: {e}")
    if run.returncode != 0:
        sys.exit(f"{what} failed (exit {run.returncode}): {run.stderr.strip() or run.stdout.strip()}")


def glmhal_run(glmhal, model, dtype, threads, prompt):
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        run_glmhal(
            [glmhal, "bench", "--model", str(model), "--skip-ops", "--quick", "--batch", "1",
             "--prompt", str(prompt), "--threads", str(threads), "--weights", dtype, "--json", out.name],
            f"glmhal bench on {model.name}",
        )
        m = json.loads(Path(out.name).read_text())["models"][0]
    decode = next(d for d in m["decode"] if d["batch"] == 1)
    return m["prefill_tps"], decode["tps"]


def llama_run(llm, prompt, new_tokens):
    tokens = [(i * 37 + 11) % 1000 + 10 for i in range(prompt)]
    llm.reset()
    start = time.perf_counter()
    llm.eval(tokens)
    prefill = prompt / (time.perf_counter() - start)
    start = time.perf_counter()
    for i in range(new_tokens):
        llm.eval([(i * 13 + 5) % 1000 + 10])
    decode = new_tokens / (time.perf_counter() - start)
    return prefill, decode


def main():
    ensure_llama_cpp()
    from llama_cpp import Llama

    parser = argparse.ArgumentParser()
    parser.add_argument("glmhal")
    parser.add_argument("--preset", default="bench-1.3b")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--prompt", type=int, default=64)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--dtypes", default="f16,q8_0,q4_0")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(dir=os.environ.get("GLMHAL_PEER_TMP")) as tmp:
        for dtype in args.dtypes.split(","):
            model = Path(tmp) / f"{args.preset}-{dtype}.gguf"
            # One file at a time (bench-1.3b's F16 file is 2.5 GB); GLMHAL_PEER_TMP picks the disk.
            run_glmhal(
                [args.glmhal, "synth", "--preset", args.preset, "--format", "gguf", "--dtype", dtype,
                 "--out", str(model)],
                f"glmhal synth --dtype {dtype} into {tmp}",
            )
            llm = Llama(model_path=str(model), n_ctx=args.prompt + args.new_tokens + 8,
                        n_batch=args.prompt, n_threads=args.threads, n_threads_batch=args.threads,
                        verbose=False)
            ours, theirs = [], []
            for _ in range(args.runs):
                ours.append(glmhal_run(args.glmhal, model, dtype, args.threads, args.prompt))
                theirs.append(llama_run(llm, args.prompt, args.new_tokens))
            del llm
            med = lambda xs, i: statistics.median(x[i] for x in xs)
            rows.append((dtype, med(ours, 0), med(theirs, 0), med(ours, 1), med(theirs, 1)))
            model.unlink()
    print(f"{args.preset}, {args.threads} threads, prompt {args.prompt}, {args.new_tokens} generated, "
          f"median of {args.runs} alternating runs; {machine()}; {date.today()}\n")
    print("| dtype | prefill glmhal | prefill llama.cpp | ratio | decode glmhal | decode llama.cpp | ratio |")
    print("|---|---|---|---|---|---|---|")
    for dtype, pg, pl, dg, dl in rows:
        print(f"| {dtype} | {pg:.1f} tok/s | {pl:.1f} tok/s | {pg / pl:.2f}× | {dg:.1f} tok/s | {dl:.1f} tok/s | {dg / dl:.2f}× |")


if __name__ == "__main__":
    main()
