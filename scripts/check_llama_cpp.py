#!/usr/bin/env python3
"""Checks that llama.cpp loads GGUF files glmhal writes, and decodes the
same greedy tokens glmhal does.

A developer tool (CI does not run it): it needs the `llama-cpp-python`
package, which builds llama.cpp from source.

    python3 -m venv .venv && .venv/bin/pip install llama-cpp-python
    cargo build --release -p glmhal
    .venv/bin/python scripts/check_llama_cpp.py target/release/glmhal [--preset tiny]

For each matrix type it writes a random model with `glmhal synth --format
gguf`, greedy-decodes a fixed prompt with llama.cpp (temperature 0, top-k
1) and with `glmhal generate --ignore-eos`, and prints both (`--preset
tiny-moe` for the glm4moe layout). Then it converts the golden fixtures
(`chatglm`, `glm4` and `glm4moe` layouts, HF and ChatGLM naming, no
tokenizer) to f32 GGUF and checks llama.cpp's greedy tokens against
transformers' (`golden.json`). It exits 1 when llama.cpp cannot load
a file or tokens differ.
"""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from llama_cpp import Llama

PROMPT = [5, 17, 99, 3, 250, 42, 7, 300]


def glmhal_greedy(glmhal, model, n):
    out = subprocess.run(
        [glmhal, "generate", "--model", str(model), "--tokens", ",".join(map(str, PROMPT)),
         "--max-new-tokens", str(n), "--ignore-eos", "--json"],
        check=True, capture_output=True, text=True,
    )
    return json.loads(out.stdout)["tokens"]


def llama_greedy(model, n, prompt=PROMPT):
    llm = Llama(model_path=str(model), n_ctx=256, n_threads=2, verbose=False)
    tokens = []
    for token in llm.generate(prompt, top_k=1, top_p=1.0, temp=0.0, repeat_penalty=1.0):
        tokens.append(token)
        if len(tokens) == n:
            break
    return tokens


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("glmhal")
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--new-tokens", type=int, default=8)
    parser.add_argument("--dtypes", default="f32,f16,q8_0")
    args = parser.parse_args()
    failed = False
    with tempfile.TemporaryDirectory() as tmp:
        for dtype in args.dtypes.split(","):
            model = Path(tmp) / f"{args.preset}-{dtype}.gguf"
            subprocess.run(
                [args.glmhal, "synth", "--preset", args.preset, "--format", "gguf",
                 "--dtype", dtype, "--out", str(model)],
                check=True, capture_output=True,
            )
            ours = glmhal_greedy(args.glmhal, model, args.new_tokens)
            try:
                theirs = llama_greedy(model, args.new_tokens)
            except Exception as e:  # llama.cpp refusing the file is the failure to report
                print(f"{dtype}: llama.cpp could not load {model.name}: {e}")
                failed = True
                continue
            same = ours == theirs
            failed |= not same
            print(f"{dtype}: glmhal {ours}\n{' ' * len(dtype)}  llama.cpp {theirs}  {'same' if same else 'DIFFERENT'}")
        fixtures = Path(__file__).resolve().parent.parent / "model" / "tests" / "fixtures"
        for golden in sorted(fixtures.glob("*/golden.json")):
            if not (golden.parent / "config.json").exists():
                continue
            g = json.loads(golden.read_text())
            model = Path(tmp) / f"{golden.parent.name}.gguf"
            subprocess.run([args.glmhal, "convert", "--model", str(golden.parent), "--out", str(model),
                            "--dtype", "f32"], check=True, capture_output=True)
            try:
                theirs = llama_greedy(model, len(g["greedy"]), g["prompt"])
            except Exception as e:  # llama.cpp refusing the file is the failure to report
                print(f"{golden.parent.name}: llama.cpp could not load it: {e}")
                failed = True
                continue
            same = theirs == g["greedy"]
            failed |= not same
            print(f"{golden.parent.name} f32: llama.cpp {theirs} vs transformers {'same' if same else g['greedy']}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
