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

use glmhal_hal::{HalError, Result};

use crate::checkpoint::{fused, one};
use crate::config::ModelConfig;
use crate::gguf::GgufFile;
use crate::moe::Moe;
use crate::weight_source::WeightSource;

/// One feed-forward matrix of a layer, as the two namings differ on it.
#[derive(Clone, Copy)]
enum Part {
    Gate,
    Up,
    Down,
    Router,
    Bias,
    SharedGate,
    SharedUp,
    SharedDown,
}

/// Layer `i`'s feed-forward weights, `stored` naming each part (`Some(x)`:
/// expert `x` of a naming with one tensor per expert) and `per_expert`
/// saying whether experts are stored apart.
fn ffn(
    c: &ModelConfig,
    moe: &Moe,
    i: usize,
    (stored, per_expert): (&dyn Fn(Part, Option<usize>) -> String, bool),
    out: &mut Vec<WeightSource>,
) {
    let (h, f) = (c.hidden, c.intermediate);
    let l = |s: &str| format!("layers.{i}.{s}");
    let pair =
        |gate: Part, up: Part, rows: usize| [gate, up].map(|p| (stored(p, None), vec![rows, h]));
    if !moe.routes(i) {
        out.push(fused(l("gate_up.weight"), &pair(Part::Gate, Part::Up, f)));
        out.push(one(&stored(Part::Down, None), l("down.weight"), &[h, f]));
        return;
    }
    let (e, fe, fs) = (moe.experts, moe.expert_ffn, moe.shared_ffn());
    out.push(WeightSource {
        f32: true,
        ..one(&stored(Part::Router, None), l("router.weight"), &[e, h])
    });
    out.push(one(&stored(Part::Bias, None), l("router.bias"), &[e]));
    for (part, canonical, shape) in [
        (Part::Gate, "experts.gate.weight", [fe, h]),
        (Part::Up, "experts.up.weight", [fe, h]),
        (Part::Down, "experts.down.weight", [h, fe]),
    ] {
        out.push(if per_expert {
            WeightSource {
                name: l(canonical),
                parts: (0..e)
                    .map(|x| (stored(part, Some(x)), shape.to_vec()))
                    .collect(),
                stacked: true,
                f32: false,
            }
        } else {
            one(
                &stored(part, Some(0)),
                l(canonical),
                &[e, shape[0], shape[1]],
            )
        });
    }
    out.push(fused(
        l("shared.gate_up.weight"),
        &pair(Part::SharedGate, Part::SharedUp, fs),
    ));
    out.push(one(
        &stored(Part::SharedDown, None),
        l("shared.down.weight"),
        &[h, fs],
    ));
}

/// Layer `i`'s feed-forward weights under transformers' names: one tensor
/// per expert, stacked at load.
pub(crate) fn hf_ffn(c: &ModelConfig, moe: &Moe, i: usize, out: &mut Vec<WeightSource>) {
    let stored = |part: Part, expert: Option<usize>| {
        let mlp = format!("model.layers.{i}.mlp");
        let proj = match part {
            Part::Gate | Part::SharedGate => "gate_proj",
            Part::Up | Part::SharedUp => "up_proj",
            Part::Down | Part::SharedDown => "down_proj",
            Part::Router => return format!("{mlp}.gate.weight"),
            Part::Bias => return format!("{mlp}.gate.e_score_correction_bias"),
        };
        match (part, expert) {
            (Part::SharedGate | Part::SharedUp | Part::SharedDown, _) => {
                format!("{mlp}.shared_experts.{proj}.weight")
            }
            (_, Some(x)) => format!("{mlp}.experts.{x}.{proj}.weight"),
            (_, None) => format!("{mlp}.{proj}.weight"),
        }
    };
    ffn(c, moe, i, (&stored, true), out);
}

/// Layer `i`'s feed-forward weights under llama.cpp's glm4moe names: the
/// experts are one 3-D tensor each, used in place.
pub(crate) fn gguf_ffn(c: &ModelConfig, moe: &Moe, i: usize, out: &mut Vec<WeightSource>) {
    let stored = |part: Part, expert: Option<usize>| {
        let name = match part {
            Part::Gate => "ffn_gate",
            Part::Up => "ffn_up",
            Part::Down => "ffn_down",
            Part::Router => "ffn_gate_inp",
            Part::Bias => return format!("blk.{i}.exp_probs_b.bias"),
            Part::SharedGate => "ffn_gate_shexp",
            Part::SharedUp => "ffn_up_shexp",
            Part::SharedDown => "ffn_down_shexp",
        };
        let experts = if expert.is_some() { "_exps" } else { "" };
        format!("blk.{i}.{name}{experts}.weight")
    };
    ffn(c, moe, i, (&stored, false), out);
}

/// The experts' part of a glm4moe GGUF's metadata (`key` prefixes `glm4moe.`).
pub(crate) fn gguf_moe(file: &GgufFile, key: &dyn Fn(&str) -> String) -> Result<Moe> {
    use crate::gguf_model::{count, missing, number};
    let required = |k: &str| count(file, &key(k))?.ok_or_else(|| missing(file, &key(k)));
    let optional =
        |k: &str, default: usize| Ok::<_, HalError>(count(file, &key(k))?.unwrap_or(default));
    let normalize = match file.get(&key("expert_weights_norm")) {
        None => false,
        Some(v) => v.as_bool().ok_or_else(|| {
            HalError::invalid(
                file.path().display().to_string(),
                format!(
                    "metadata `{}` is {v:?}, not a bool",
                    key("expert_weights_norm")
                ),
            )
        })?,
    };
    // llama.cpp: gating 2 is the sigmoid, and glm4moe reads 0 (none) as the
    // sigmoid too; a scale of 0 (or none) scales by 1.
    let gating = optional("expert_gating_func", 2)?;
    if gating != 2 && gating != 0 {
        return Err(HalError::invalid(
            file.path().display().to_string(),
            format!("expert_gating_func {gating} is not the sigmoid (2) glm4moe routes with"),
        ));
    }
    let scale = number(file, &key("expert_weights_scale"))?.unwrap_or(0.0);
    Ok(Moe {
        experts: required("expert_count")?,
        top_k: required("expert_used_count")?,
        expert_ffn: required("expert_feed_forward_length")?,
        shared_experts: required("expert_shared_count")?,
        first_dense: optional("leading_dense_block_count", 0)?,
        n_group: optional("expert_group_count", 1)?.max(1),
        topk_group: optional("expert_group_used_count", 1)?.max(1),
        normalize,
        scaling: if scale == 0.0 { 1.0 } else { scale },
        mtp_layers: optional("nextn_predict_layers", 0)?,
    })
}
