#!/usr/bin/env python3
"""Checks that glmhal reads the GGUF files llama.cpp's own converter writes.

A developer tool (CI does not run it). It needs a llama.cpp source tree (for
`convert_hf_to_gguf.py`, `conversion/` and `gguf-py/`) and a Python with
torch, transformers and numpy.

    .venv/bin/python scripts/check_llama_convert.py target/release/glmhal /path/to/llama.cpp

It synthesizes a tiny GLM-4 (`Glm4ForCausalLM`; `--preset tiny-moe`: a
`Glm4MoeForCausalLM` with one tensor per expert) checkpoint with glmhal,
converts it with llama.cpp's converter (f32 and q8_0), and compares glmhal's
greedy tokens on the safetensors directory (loaded as f32, and as q8_0 for
the q8_0 file: the same blocks) and on each converted file, and
the token ids of a chat prompt encoded by the tokenizer the converter stored. The
synthetic byte-level tokenizer is not one llama.cpp knows by hash, so the
converter is told its pre-tokenizer is `glm4` (the only part not left to it).
"""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

PROMPT = [5, 17, 99, 3, 250, 42, 7, 300]


def greedy(glmhal, model, n, weights=None):
    extra = ["--weights", weights] if weights else []
    out = subprocess.run(
        [glmhal, "generate", "--model", str(model), "--tokens", ",".join(map(str, PROMPT)),
         "--max-new-tokens", str(n), "--ignore-eos", "--json"] + extra,
        check=True, capture_output=True, text=True,
    )
    return json.loads(out.stdout)["tokens"]


def prompt_ids(glmhal, model):
    out = subprocess.run(
        [glmhal, "generate", "--model", str(model), "--chat", "--prompt", "Hello, 世界",
         "--max-new-tokens", "1", "--json"],
        check=True, capture_output=True, text=True,
    )
    return json.loads(out.stdout)["prompt_tokens"]


def convert(llama_cpp, model_dir, out, outtype):
    sys.path.insert(0, str(llama_cpp / "gguf-py"))
    sys.path.insert(0, str(llama_cpp))
    import convert_hf_to_gguf
    from conversion import base

    base.TextModel.get_vocab_base_pre = lambda self, tokenizer: "glm4"
    sys.argv = ["convert_hf_to_gguf.py", str(model_dir), "--outfile", str(out), "--outtype", outtype]
    convert_hf_to_gguf.main()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("glmhal")
    parser.add_argument("llama_cpp", type=Path)
    parser.add_argument("--new-tokens", type=int, default=8)
    parser.add_argument("--preset", default="tiny", help="tiny (glm4) or tiny-moe (glm4_moe)")
    args = parser.parse_args()
    failed = False
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(tmp) / args.preset
        subprocess.run([args.glmhal, "synth", "--preset", args.preset, "--dtype", "f32", "--out", str(model)],
                       check=True, capture_output=True)
        (model / "tokenizer_config.json").write_text(json.dumps({
            "tokenizer_class": "PreTrainedTokenizerFast", "eos_token": "<|endoftext|>",
        }))
        want = greedy(args.glmhal, model, args.new_tokens)
        text_ids = prompt_ids(args.glmhal, model)
        print(f"safetensors: {want}; chat prompt {text_ids}")
        for outtype in ["f32", "q8_0"]:
            out = Path(tmp) / f"{args.preset}-{outtype}.gguf"
            convert(args.llama_cpp, model, out, outtype)
            got = greedy(args.glmhal, out, args.new_tokens)
            # Against the same weights quantized by glmhal at load (the same blocks).
            expected = want if outtype == "f32" else greedy(args.glmhal, model, args.new_tokens, outtype)
            # The tokenizer the converter stored encodes text like tokenizer.json.
            same = got == expected and prompt_ids(args.glmhal, out) == text_ids
            failed |= not same
            print(f"llama.cpp {outtype}: {got}  {'same' if same else 'DIFFERENT'}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
