#!/usr/bin/env python3
"""Batch-1 greedy decode speed of Hugging Face transformers (eager attention)
on a checkpoint directory, compared with glmhal's decode on the same
checkpoint from a `glmhal bench --model DIR --json FILE` report.

Used by ci/device-check.sh on machines that have torch and transformers
(it is skipped elsewhere); CI does not run it.

    python3 ci/transformers-decode.py MODEL_DIR GLMHAL_BENCH_JSON OUT_JSON [--device cuda]
"""

import argparse
import json
import time

import torch
from transformers import AutoModelForCausalLM


def transformers_decode_tps(model_dir, device, prompt_tokens, new_tokens, runs):
    dtype = torch.bfloat16 if device != "cpu" else torch.float32
    model = AutoModelForCausalLM.from_pretrained(
        model_dir, torch_dtype=dtype, attn_implementation="eager"
    ).to(device)
    model.eval()
    vocab = model.config.vocab_size
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(0, vocab, (1, prompt_tokens), generator=generator).to(device)
    best = None
    with torch.no_grad():
        for _ in range(runs + 1):  # the first run warms up
            out = model(ids, use_cache=True)
            past = out.past_key_values
            token = out.logits[:, -1:].argmax(-1)
            if device != "cpu":
                torch.cuda.synchronize()
            start = time.perf_counter()
            for _ in range(new_tokens):
                out = model(token, past_key_values=past, use_cache=True)
                past = out.past_key_values
                token = out.logits[:, -1:].argmax(-1)
            if device != "cpu":
                torch.cuda.synchronize()
            tps = new_tokens / (time.perf_counter() - start)
            best = tps if best is None else max(best, tps)
    return best, str(dtype).replace("torch.", "")


def glmhal_decode_tps(report_path):
    with open(report_path) as f:
        report = json.load(f)
    for model in report.get("models", []):
        for d in model.get("decode", []):
            if d.get("batch") == 1:
                return d["tps"], model.get("weights")
    return None, None


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("model_dir")
    parser.add_argument("glmhal_json")
    parser.add_argument("out_json")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--prompt-tokens", type=int, default=64)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    hf_tps, hf_dtype = transformers_decode_tps(
        args.model_dir, args.device, args.prompt_tokens, args.new_tokens, args.runs
    )
    ours, our_weights = glmhal_decode_tps(args.glmhal_json)
    result = {
        "model_dir": args.model_dir,
        "device": torch.cuda.get_device_name(0) if args.device != "cpu" else "cpu",
        "torch": torch.__version__,
        "transformers_decode_tps": hf_tps,
        "transformers_dtype": hf_dtype,
        "glmhal_decode_tps": ours,
        "glmhal_weights": our_weights,
        "ratio": (ours / hf_tps) if ours and hf_tps else None,
    }
    with open(args.out_json, "w") as f:
        json.dump(result, f, indent=2)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
