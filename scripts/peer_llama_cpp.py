#!/usr/bin/env python3
"""glmhal's CPU backend against llama.cpp on the same GGUF files, the same
cores and the same thread count, run alternately; prints, per dtype, the
median of each engine for prefill and decode and the median of the ratios
of the runs paired in time, with the lowest and highest, as Markdown.

    python3 scripts/peer_llama_cpp.py target/release/glmhal [--preset bench-1.3b]
        [--threads 2] [--runs 5] [--prompt 64] [--new-tokens 32] [--dtypes f16,q8_0,q4_0]
        [--model-dir DIR] [--json FILE]

Each run measures both engines one after the other, glmhal first in even
runs and llama.cpp first in odd ones, and gives one ratio: on a machine
whose memory or cores are shared, the two engines of a pair meet about the
same load, where the medians of separate series need not. Decode reads
every weight once per token, so the table also gives the weight bytes
each engine read per second in decode and the read-bandwidth ceiling that
`glmhal bench` measured in each run (medians): how near the memory's pace
each engine is, and how much that pace moved.

`llama-cpp-python` (which builds llama.cpp from source) is installed into
`.venv-peers/` next to the repository root when it is missing, and the
script re-runs itself there. glmhal is measured with `glmhal bench --model
FILE --skip-ops` (prefill of the prompt in one step, batch-1 decode steps);
llama.cpp with `Llama.eval` on the same prompt length and one token per
decode step. The GGUF files are written one at a time into a temporary
directory under `GLMHAL_PEER_TMP` (default: the system's) and deleted after
use; bench-1.3b's F16 file needs 2.5 GB free there. With `--model-dir` they
are kept there and reused when present. `--json` writes every run's figures.
A developer and release tool: CI does not run it.
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
    names, families = [], []
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                names.append(value.strip())
            elif key.strip() == "cpu family":
                families.append(value.strip())
    except OSError:
        pass
    model = names[0] if names else platform.processor() or platform.machine()
    family = f", CPU family {families[0]}" if families else ""
    return f"{model}{family}, {os.cpu_count()} logical cores"


def run_glmhal(args, what):
    """Runs glmhal; on failure stops with its own error message, not a traceback."""
    try:
        run = subprocess.run(args, capture_output=True, text=True)
    except OSError as e:
        sys.exit(f"{what}: cannot run {args[0]}: {e}")
    if run.returncode != 0:
        sys.exit(f"{what} failed (exit {run.returncode}): {run.stderr.strip() or run.stdout.strip()}")


def glmhal_run(glmhal, model, dtype, threads, prompt):
    """One `glmhal bench` run: prefill and decode tok/s, the weight bytes
    decode reads per token and the read ceiling measured in the run."""
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        run_glmhal(
            [glmhal, "bench", "--model", str(model), "--skip-ops", "--quick", "--batch", "1",
             "--prompt", str(prompt), "--threads", str(threads), "--weights", dtype, "--json", out.name],
            f"glmhal bench on {model.name}",
        )
        report = json.loads(Path(out.name).read_text())
    m = report["models"][0]
    decode = next(d for d in m["decode"] if d["batch"] == 1)
    gbps = decode.get("effective_gbps")
    ceiling = next((p.get("bytes_per_s") for p in report.get("peaks", []) if p.get("backend") == "cpu"), None)
    return {
        "prefill": m["prefill_tps"],
        "decode": decode["tps"],
        "bytes_per_token": gbps * 1e9 / decode["tps"] if gbps and decode["tps"] else None,
        "ceiling_gbps": ceiling / 1e9 if ceiling else None,
    }


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
    return {"prefill": prefill, "decode": decode}


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def paired(ours, theirs, key):
    """The median, lowest and highest of the per-run ratios."""
    ratios = [o[key] / t[key] for o, t in zip(ours, theirs)]
    return statistics.median(ratios), min(ratios), max(ratios)


def measure(args, model, dtype):
    from llama_cpp import Llama

    llm = Llama(model_path=str(model), n_ctx=args.prompt + args.new_tokens + 8,
                n_batch=args.prompt, n_threads=args.threads, n_threads_batch=args.threads,
                verbose=False)
    ours, theirs = [], []
    for run in range(args.runs):
        # Alternate which engine goes first, so neither always follows the other.
        if run % 2 == 0:
            ours.append(glmhal_run(args.glmhal, model, dtype, args.threads, args.prompt))
            theirs.append(llama_run(llm, args.prompt, args.new_tokens))
        else:
            theirs.append(llama_run(llm, args.prompt, args.new_tokens))
            ours.append(glmhal_run(args.glmhal, model, dtype, args.threads, args.prompt))
        print(f"{dtype} run {run + 1}/{args.runs}: glmhal {ours[-1]['prefill']:.1f}/{ours[-1]['decode']:.1f}, "
              f"llama.cpp {theirs[-1]['prefill']:.1f}/{theirs[-1]['decode']:.1f} tok/s (prefill/decode)",
              file=sys.stderr)
    del llm
    return ours, theirs


def gbps(tps, bytes_per_token):
    return f"{tps * bytes_per_token / 1e9:.1f}" if bytes_per_token else "?"


def main():
    ensure_llama_cpp()

    parser = argparse.ArgumentParser()
    parser.add_argument("glmhal")
    parser.add_argument("--preset", default="bench-1.3b")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--prompt", type=int, default=64)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--dtypes", default="f16,q8_0,q4_0")
    parser.add_argument("--model-dir", type=Path,
                        help="write the GGUF files here and keep them (reused when present)")
    parser.add_argument("--json", type=Path, help="write every run's figures here")
    args = parser.parse_args()
    if args.runs < 1:
        sys.exit("--runs must be at least 1")
    results = {}
    with tempfile.TemporaryDirectory(dir=os.environ.get("GLMHAL_PEER_TMP")) as tmp:
        for dtype in args.dtypes.split(","):
            folder = args.model_dir or Path(tmp)
            folder.mkdir(parents=True, exist_ok=True)
            model = folder / f"{args.preset}-{dtype}.gguf"
            if not (args.model_dir and model.exists()):
                # One file at a time (bench-1.3b's F16 file is 2.5 GB); GLMHAL_PEER_TMP picks the disk.
                run_glmhal(
                    [args.glmhal, "synth", "--preset", args.preset, "--format", "gguf", "--dtype", dtype,
                     "--out", str(model)],
                    f"glmhal synth --dtype {dtype} into {folder}",
                )
            results[dtype] = measure(args, model, dtype)
            if not args.model_dir:
                model.unlink()
    print(f"{args.preset}, {args.threads} threads, prompt {args.prompt}, {args.new_tokens} generated, "
          f"{args.runs} alternating runs; {machine()}; {date.today()}\n")
    print("Medians; each ratio is the median of the runs' ratios [lowest–highest]; decode also as "
          "weight GB/s read by glmhal / llama.cpp, and the read ceiling glmhal measured.\n")
    print("| dtype | prefill glmhal | prefill llama.cpp | ratio | decode glmhal | decode llama.cpp | ratio "
          "| decode GB/s | ceiling GB/s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for dtype, (ours, theirs) in results.items():
        pg, pl = median(o["prefill"] for o in ours), median(t["prefill"] for t in theirs)
        dg, dl = median(o["decode"] for o in ours), median(t["decode"] for t in theirs)
        pr, dr = paired(ours, theirs, "prefill"), paired(ours, theirs, "decode")
        per_token = median(o["bytes_per_token"] for o in ours)
        ceiling = median(o["ceiling_gbps"] for o in ours)
        print(f"| {dtype} | {pg:.1f} tok/s | {pl:.1f} tok/s | {pr[0]:.2f}× [{pr[1]:.2f}–{pr[2]:.2f}] "
              f"| {dg:.1f} tok/s | {dl:.1f} tok/s | {dr[0]:.2f}× [{dr[1]:.2f}–{dr[2]:.2f}] "
              f"| {gbps(dg, per_token)} / {gbps(dl, per_token)} "
              f"| {f'{ceiling:.1f}' if ceiling else '?'} |")
    if args.json:
        args.json.write_text(json.dumps({
            "preset": args.preset, "threads": args.threads, "prompt": args.prompt,
            "new_tokens": args.new_tokens, "machine": machine(), "date": str(date.today()),
            "runs": {dtype: {"glmhal": ours, "llama_cpp": theirs} for dtype, (ours, theirs) in results.items()},
        }, indent=2))


if __name__ == "__main__":
    main()
