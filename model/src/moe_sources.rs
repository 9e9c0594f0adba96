//! Where the feed-forward weights of a glm4_moe checkpoint come from:
//! transformers' names (one tensor per expert, stacked here) and llama.cpp's
//! GGUF names (experts already stacked in 3-D tensors, read in place).
//!
//! Canonical names per layer: a dense layer has `gate_up.weight`
//! (`[2F, H]`, gate first) and `down.weight`; a routed layer has
//! `router.weight` (`[E, H]`, kept f32), `router.bias` (the correction
//! bias, `[E]`), `experts.gate.weight` and `experts.up.weight`
//! (`[E, F', H]`), `experts.down.weight` (`[E, H, F']`), and the shared
//! expert's `shared.gate_up.weight` and `shared.down.weight`.

use crate::checkpoint::{fused, one};
use crate::config::ModelConfig;
use crate::moe::Moe;
use crate::weight_source::WeightSource;

/// Layer `i`'s feed-forward weights under transformers' names.
pub(crate) fn hf_ffn(c: &ModelConfig, moe: &Moe, i: usize, out: &mut Vec<WeightSource>) {
    let (h, f) = (c.hidden, c.intermediate);
    let at = |s: &str| format!("model.layers.{i}.mlp.{s}");
    let l = |s: &str| format!("layers.{i}.{s}");
    let gate_up = |prefix: &str, width: usize| {
        [("gate_proj", width), ("up_proj", width)]
            .map(|(n, rows)| (at(&format!("{prefix}{n}.weight")), vec![rows, h]))
    };
    if !moe.routes(i) {
        out.push(fused(l("gate_up.weight"), &gate_up("", f)));
        out.push(one(&at("down_proj.weight"), l("down.weight"), &[h, f]));
        return;
    }
    let (e, fe, fs) = (moe.experts, moe.expert_ffn, moe.shared_ffn());
    out.push(WeightSource {
        f32: true,
        ..one(&at("gate.weight"), l("router.weight"), &[e, h])
    });
    out.push(one(
        &at("gate.e_score_correction_bias"),
        l("router.bias"),
        &[e],
    ));
    for (proj, canonical, shape) in [
        ("gate_proj", "experts.gate.weight", [fe, h]),
        ("up_proj", "experts.up.weight", [fe, h]),
        ("down_proj", "experts.down.weight", [h, fe]),
    ] {
        out.push(WeightSource {
            name: l(canonical),
            parts: (0..e)
                .map(|x| (at(&format!("experts.{x}.{proj}.weight")), shape.to_vec()))
                .collect(),
            stacked: true,
            f32: false,
        });
    }
    out.push(fused(
        l("shared.gate_up.weight"),
        &gate_up("shared_experts.", fs),
    ));
    out.push(one(
        &at("shared_experts.down_proj.weight"),
        l("shared.down.weight"),
        &[h, fs],
    ));
}
