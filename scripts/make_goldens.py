#!/usr/bin/env python3
"""Golden fixtures for glmhal's model tests, from Hugging Face transformers.

Builds tiny random GLM checkpoints with transformers (GlmForCausalLM,
Glm4ForCausalLM, Glm4MoeForCausalLM), writes them in the layouts glmhal reads
(HF naming with transformers 4 flat rotary keys or transformers 5
`rope_parameters`, the original ChatGLM naming with a fused query_key_value,
and glm4_moe as transformers saves it: one tensor per expert, sharded, with
the next-token-prediction layer GLM-4.5 checkpoints carry after the last
layer), and records for a fixed prompt:
  - golden.safetensors: `logits` [prompt_len, vocab] f32 from a plain forward pass;
  - golden.json: the prompt and the greedy tokens that transformers' generate()
    decodes with its KV cache.

This is a developer tool: CI does not run it and needs neither torch nor
transformers; its outputs are committed under model/tests/fixtures/.

    python3 -m venv .venv && .venv/bin/pip install torch transformers safetensors
    .venv/bin/python scripts/make_goldens.py [moe|dense]
"""

import json
import pathlib

import torch
from safetensors.torch import save_file
from transformers import (Glm4Config, Glm4ForCausalLM, Glm4MoeConfig, Glm4MoeForCausalLM,
                          GlmConfig, GlmForCausalLM)

OUT = pathlib.Path(__file__).resolve().parent.parent / "model" / "tests" / "fixtures"
NEW_TOKENS = 12

# name, class, layers, hidden, heads, kv heads, head_dim, ffn, vocab, theta, config style, prompt length
FIXTURES = [
    ("glm-gqa2-tf4", "glm", 2, 64, 4, 2, 16, 96, 128, 10000.0, "tf4", 12),
    ("glm4-gqa4-tf5", "glm4", 2, 64, 8, 2, 16, 96, 160, 5e6, "tf5", 80),
    ("glm-mha-chatglm", "glm", 2, 64, 4, 4, 16, 64, 96, 10000.0, "chatglm", 9),
    ("glm4-mqa-theta5e6", "glm4", 3, 32, 4, 1, 16, 64, 100, 5e6, "tf4", 20),
]


# glm4_moe: name, layers (the first dense), hidden, heads, kv heads, head_dim,
# dense ffn, expert ffn, experts, top-k, n_group, topk_group, qk-norm, q/k/v
# bias, normalized weights, routed scaling, vocab, theta, config style,
# prompt length, shard size (None: one file), an MTP layer stored after the last.
MOE_FIXTURES = [
    ("glm4moe-grouped-qknorm", 3, 64, 4, 2, 16, 96, 32, 8, 2, 2, 1, True, True, True, 2.5, 128, 1e6,
     "tf5", 16, "200KB", True),
    ("glm4moe-flat-tf4", 2, 64, 8, 2, 16, 64, 32, 16, 4, 1, 1, False, False, False, 1.0, 96, 1e6,
     "tf4", 24, None, False),
]


def randomize(model, seed):
    """Weights large enough that logits are well separated (greedy is stable),
    non-trivial norm weights and biases."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=g))
            elif name.endswith("bias"):
                p.copy_(0.3 * torch.randn(p.shape, generator=g))
            elif "embed" in name:
                p.copy_(torch.randn(p.shape, generator=g))
            elif name.endswith("e_score_correction_bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
            elif name.endswith("mlp.gate.weight"):
                # Logits of spread about 1.5: scores across the sigmoid's slope.
                p.copy_(1.5 * torch.randn(p.shape, generator=g) / p.shape[-1] ** 0.5)
            else:
                p.copy_(2.0 * torch.randn(p.shape, generator=g) / p.shape[-1] ** 0.5)


def hf_config(kind, layers, hidden, heads, kv, head_dim, ffn, vocab, theta):
    args = dict(
        vocab_size=vocab,
        hidden_size=hidden,
        intermediate_size=ffn,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv,
        head_dim=head_dim,
        max_position_embeddings=256,
        rms_norm_eps=1e-5,
        attention_bias=True,
        eos_token_id=[vocab - 1, vocab - 2],
        pad_token_id=0,
        tie_word_embeddings=False,
        rope_parameters={"rope_type": "default", "rope_theta": theta, "partial_rotary_factor": 0.5},
    )
    cls = GlmConfig if kind == "glm" else Glm4Config
    config = cls(**args)
    config._attn_implementation = "eager"
    return config


def moe_config(layers, hidden, heads, kv, head_dim, ffn, expert_ffn, experts, top_k, n_group, topk_group,
               qk_norm, bias, norm, scaling, vocab, theta):
    config = Glm4MoeConfig(
        vocab_size=vocab, hidden_size=hidden, intermediate_size=ffn, moe_intermediate_size=expert_ffn,
        num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=kv, head_dim=head_dim,
        n_routed_experts=experts, num_experts_per_tok=top_k, n_shared_experts=1, first_k_dense_replace=1,
        n_group=n_group, topk_group=topk_group, use_qk_norm=qk_norm, attention_bias=bias,
        norm_topk_prob=norm, routed_scaling_factor=scaling, max_position_embeddings=256, rms_norm_eps=1e-5,
        eos_token_id=[vocab - 1, vocab - 2], pad_token_id=0, tie_word_embeddings=False,
        num_nextn_predict_layers=1,
        rope_parameters={"rope_type": "default", "rope_theta": theta, "partial_rotary_factor": 0.5},
    )
    config._attn_implementation = "eager"
    return config


def write_moe(dir, model, config, style, shard, mtp, seed):
    """As transformers saves it (one tensor per expert), sharded when asked,
    with random next-token-prediction tensors at index num_hidden_layers
    (as GLM-4.5 checkpoints hold them; transformers does not load them)."""
    model.save_pretrained(dir, max_shard_size=shard or "1GB", safe_serialization=True)
    if mtp:
        g = torch.Generator().manual_seed(seed)
        h, n = config.hidden_size, config.num_hidden_layers
        extra = {
            f"model.layers.{n}.enorm.weight": torch.ones(h),
            f"model.layers.{n}.hnorm.weight": torch.ones(h),
            f"model.layers.{n}.eh_proj.weight": torch.randn(h, 2 * h, generator=g),
            f"model.layers.{n}.shared_head.norm.weight": torch.ones(h),
            f"model.layers.{n}.input_layernorm.weight": torch.ones(h),
            f"model.layers.{n}.mlp.gate.weight": torch.randn(config.n_routed_experts, h, generator=g),
        }
        save_file(extra, dir / "model-mtp.safetensors")
        index_path = dir / "model.safetensors.index.json"
        if index_path.exists():
            index = json.loads(index_path.read_text())
        else:
            (dir / "model.safetensors").rename(dir / "model-main.safetensors")
            keys = safe_keys(dir / "model-main.safetensors")
            index = {"metadata": {}, "weight_map": {k: "model-main.safetensors" for k in keys}}
        index["weight_map"].update({k: "model-mtp.safetensors" for k in extra})
        index_path.write_text(json.dumps(index, indent=2, sort_keys=True))
    d = json.loads((dir / "config.json").read_text())
    if style == "tf4":
        rp = d.pop("rope_parameters")
        d["rope_theta"] = rp["rope_theta"]
        d["partial_rotary_factor"] = rp["partial_rotary_factor"]
    d.pop("transformers_version", None)
    (dir / "config.json").write_text(json.dumps(d, indent=2, sort_keys=True))
    (dir / "generation_config.json").unlink(missing_ok=True)


def safe_keys(path):
    from safetensors import safe_open
    with safe_open(path, "pt") as f:
        return list(f.keys())


def write_hf(dir, model, config, style):
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, dir / "model.safetensors")
    d = config.to_dict()
    d["model_type"] = config.model_type
    if style == "tf4":
        rp = d.pop("rope_parameters")
        d["rope_theta"] = rp["rope_theta"]
        d["partial_rotary_factor"] = rp["partial_rotary_factor"]
    (dir / "config.json").write_text(json.dumps(d, indent=2, sort_keys=True))


def write_chatglm(dir, model, config):
    """The same tensors under THUDM's names, q/k/v fused by rows."""
    sd = model.state_dict()
    out = {"transformer.embedding.word_embeddings.weight": sd["model.embed_tokens.weight"]}
    for i in range(config.num_hidden_layers):
        p, q = f"model.layers.{i}.", f"transformer.encoder.layers.{i}."
        out[q + "input_layernorm.weight"] = sd[p + "input_layernorm.weight"]
        for kind in ("weight", "bias"):
            out[q + f"self_attention.query_key_value.{kind}"] = torch.cat(
                [sd[p + f"self_attn.{n}_proj.{kind}"] for n in ("q", "k", "v")], 0
            )
        out[q + "self_attention.dense.weight"] = sd[p + "self_attn.o_proj.weight"]
        out[q + "post_attention_layernorm.weight"] = sd[p + "post_attention_layernorm.weight"]
        out[q + "mlp.dense_h_to_4h.weight"] = sd[p + "mlp.gate_up_proj.weight"]
        out[q + "mlp.dense_4h_to_h.weight"] = sd[p + "mlp.down_proj.weight"]
    out["transformer.encoder.final_layernorm.weight"] = sd["model.norm.weight"]
    out["transformer.output_layer.weight"] = sd["lm_head.weight"]
    save_file({k: v.contiguous() for k, v in out.items()}, dir / "model.safetensors")
    theta = config.rope_parameters["rope_theta"]
    cfg = {
        "architectures": ["ChatGLMModel"],
        "model_type": "chatglm",
        "num_layers": config.num_hidden_layers,
        "hidden_size": config.hidden_size,
        "ffn_hidden_size": config.intermediate_size,
        "kv_channels": config.head_dim,
        "num_attention_heads": config.num_attention_heads,
        "multi_query_attention": config.num_key_value_heads != config.num_attention_heads,
        "multi_query_group_num": config.num_key_value_heads,
        "padded_vocab_size": config.vocab_size,
        "seq_length": config.max_position_embeddings,
        "layernorm_epsilon": config.rms_norm_eps,
        "add_qkv_bias": True,
        "rmsnorm": True,
        "rope_ratio": theta / 10000.0,
        "eos_token_id": config.eos_token_id,
    }
    (dir / "config.json").write_text(json.dumps(cfg, indent=2, sort_keys=True))


def greedy(model, prompt):
    """The NEW_TOKENS greedy tokens generate() decodes after the prompt, with its KV cache."""
    with torch.no_grad():
        gen = model.generate(
            prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=NEW_TOKENS, do_sample=False,
            eos_token_id=None, pad_token_id=0, min_new_tokens=NEW_TOKENS,
        )
    return gen[0, prompt.shape[1]:].tolist()


def record(dir, model, prompt, plen):
    """golden.safetensors (the prompt's logits) and golden.json (greedy tokens)."""
    with torch.no_grad():
        logits = model(prompt).logits[0].float().contiguous()
    tokens = greedy(model, prompt)
    save_file({"logits": logits}, dir / "golden.safetensors")
    (dir / "golden.json").write_text(
        json.dumps(
            {"source": f"transformers {__import__('transformers').__version__}, torch {torch.__version__}, {type(model).__name__}, eager attention, f32",
             "prompt": prompt[0].tolist(), "greedy": tokens},
            indent=1,
        )
    )
    return tokens


def watch_routing(model):
    """Hooks every router and returns a list holding the smallest gap seen
    between a chosen and an unchosen expert's biased score (and between kept
    and dropped groups): routing must not hinge on f32 rounding."""
    smallest = [float("inf")]

    def hook(router, inputs, _):
        x = inputs[0].reshape(-1, router.hidden_dim).float()
        s = torch.sigmoid(x @ router.weight.float().T) + router.e_score_correction_bias
        per = router.num_experts // router.num_group
        groups = s.view(-1, router.num_group, per).topk(2, dim=-1)[0].sum(-1)
        if router.num_group > 1:
            g = groups.sort(dim=-1, descending=True)[0]
            smallest[0] = min(smallest[0], (g[:, router.topk_group - 1] - g[:, router.topk_group]).min().item())
            kept = groups.topk(router.topk_group, dim=-1)[1]
            mask = torch.zeros_like(groups).scatter_(1, kept, 1).repeat_interleave(per, dim=1)
            s = s.masked_fill(mask == 0, float("-inf"))
        v = s.sort(dim=-1, descending=True)[0]
        smallest[0] = min(smallest[0], (v[:, router.top_k - 1] - v[:, router.top_k]).min().item())

    for layer in model.model.layers:
        if hasattr(layer.mlp, "gate"):
            layer.mlp.gate.register_forward_hook(hook)
    return smallest


def main_moe():
    for i, (name, layers, hidden, heads, kv, hd, ffn, effn, experts, top_k, n_group, topk_group, qk_norm, bias,
            norm, scaling, vocab, theta, style, plen, shard, mtp) in enumerate(MOE_FIXTURES):
        torch.manual_seed(1100 + i)
        config = moe_config(layers, hidden, heads, kv, hd, ffn, effn, experts, top_k, n_group, topk_group,
                            qk_norm, bias, norm, scaling, vocab, theta)
        g = torch.Generator().manual_seed(3100 + i)
        prompt = torch.randint(0, vocab - 2, (1, plen), generator=g)
        dir = OUT / name
        # The first weights whose routing (prompt and greedy tokens) never
        # hinges on f32 rounding: no decision closer than 1e-4.
        for attempt in range(50):
            model = Glm4MoeForCausalLM(config).eval()
            randomize(model, 2100 + 100 * i + attempt)
            gap = watch_routing(model)
            greedy(model, prompt)
            if gap[0] > 1e-4:
                break
        assert gap[0] > 1e-4, f"{name}: no weights routed by more than 1e-4"
        if dir.exists():
            for f in dir.iterdir():
                f.unlink()
        dir.mkdir(parents=True, exist_ok=True)
        write_moe(dir, model, config, style, shard, mtp, 4100 + i)
        tokens = record(dir, model, prompt, plen)
        print(name, "prompt", plen, "greedy", tokens, "smallest routing gap", gap[0])


def main():
    """Every fixture, or with `moe` / `dense` as the argument, one family."""
    import sys
    which = sys.argv[1] if len(sys.argv) > 1 else "all"
    if which in ("all", "moe"):
        main_moe()
    if which == "moe":
        return
    for i, (name, kind, layers, hidden, heads, kv, hd, ffn, vocab, theta, style, plen) in enumerate(FIXTURES):
        torch.manual_seed(1000 + i)
        config = hf_config(kind, layers, hidden, heads, kv, hd, ffn, vocab, theta)
        model = (GlmForCausalLM if kind == "glm" else Glm4ForCausalLM)(config).eval()
        randomize(model, 2000 + i)
        g = torch.Generator().manual_seed(3000 + i)
        # Avoid the EOS ids so greedy decoding is not cut short by the prompt.
        prompt = torch.randint(0, vocab - 2, (1, plen), generator=g)
        dir = OUT / name
        dir.mkdir(parents=True, exist_ok=True)
        if style == "chatglm":
            write_chatglm(dir, model, config)
        else:
            write_hf(dir, model, config, style)
        tokens = record(dir, model, prompt, plen)
        print(name, "prompt", plen, "greedy", tokens)


if __name__ == "__main__":
    main()
