//! Random-weight checkpoints with the exact shapes of real GLM models, so
//! anyone can benchmark without downloading weights.

use std::collections::BTreeMap;
use std::path::Path;

use glmhal_hal::{quant, DType, HalError, Result, Rng};
use serde::Serialize;
use serde_json::json;

use crate::config::LayerOrder;
use crate::safetensors::SafetensorsWriter;
use crate::tokenizer::synthetic_tokenizer_json;

/// The shape of a model family member.
#[derive(Clone, Debug, Serialize)]
pub struct Preset {
    /// Name users type.
    pub name: &'static str,
    /// Layer order.
    pub order: LayerOrder,
    /// Hidden size.
    pub hidden: usize,
    /// Decoder layers.
    pub layers: usize,
    /// Query heads.
    pub heads: usize,
    /// KV heads.
    pub kv_heads: usize,
    /// Head dimension.
    pub head_dim: usize,
    /// MLP width.
    pub ffn: usize,
    /// Vocabulary.
    pub vocab: usize,
    /// Rotary base.
    pub theta: f64,
    /// RMSNorm epsilon.
    pub eps: f64,
    /// Trained context.
    pub context: usize,
    /// The experts of a glm4_moe shape (GLM-4.5), if any.
    pub moe: Option<MoeShape>,
}

/// The mixture-of-experts part of a preset (a `glm4_moe` config).
#[derive(Clone, Copy, Debug, Serialize)]
pub struct MoeShape {
    /// Routed experts per layer.
    pub experts: usize,
    /// Experts per token.
    pub top_k: usize,
    /// One expert's FFN width.
    pub expert_ffn: usize,
    /// Layers before the first routed one keep a dense FFN.
    pub first_dense: usize,
    /// Routed scaling factor.
    pub scaling: f64,
    /// Per-head q/k RMSNorm.
    pub qk_norm: bool,
}

/// A glm4_moe preset: GLM-4.5's attention (96 heads over 8, head_dim 128,
/// NeoX rope on half of each head, theta 1e6), one shared expert, ungrouped
/// routing, normalized weights.
const fn moe_preset(
    name: &'static str,
    [hidden, layers, ffn]: [usize; 3],
    moe: MoeShape,
) -> Preset {
    Preset {
        moe: Some(moe),
        ..preset(
            name,
            LayerOrder::Glm,
            [hidden, layers, 96, 8, 128, ffn, 151552, 131072],
            1e6,
            1e-5,
        )
    }
}

/// GLM-4.5-Air's experts: 128 of 1408, 8 per token, the first layer dense.
const AIR: MoeShape = MoeShape {
    experts: 128,
    top_k: 8,
    expert_ffn: 1408,
    first_dense: 1,
    scaling: 1.0,
    qk_norm: false,
};

/// GLM-4.5's experts: 160 of 1536, 8 per token, the first three layers dense.
const GLM45: MoeShape = MoeShape {
    experts: 160,
    top_k: 8,
    expert_ffn: 1536,
    first_dense: 3,
    scaling: 2.5,
    qk_norm: true,
};

const fn preset(
    name: &'static str,
    order: LayerOrder,
    [hidden, layers, heads, kv_heads, head_dim, ffn, vocab, context]: [usize; 8],
    theta: f64,
    eps: f64,
) -> Preset {
    Preset {
        name,
        order,
        hidden,
        layers,
        heads,
        kv_heads,
        head_dim,
        ffn,
        vocab,
        theta,
        eps,
        context,
        moe: None,
    }
}

/// Every preset (glm-edge shapes are derived from parameter counts; the
/// `-4l` ones keep a model's shapes with 4 layers).
pub const PRESETS: [Preset; 12] = [
    preset(
        "tiny",
        LayerOrder::Glm4,
        [64, 2, 4, 2, 16, 128, 512, 512],
        10000.0,
        1e-5,
    ),
    preset(
        "glm-edge-1.5b",
        LayerOrder::Glm,
        [2048, 28, 16, 4, 128, 6144, 59264, 8192],
        10000.0,
        1e-5,
    ),
    preset(
        "glm-edge-4b",
        LayerOrder::Glm,
        [3072, 40, 24, 6, 128, 8192, 59264, 8192],
        10000.0,
        1e-5,
    ),
    preset(
        "chatglm3-6b",
        LayerOrder::Glm,
        [4096, 28, 32, 2, 128, 13696, 65024, 8192],
        10000.0,
        1e-5,
    ),
    preset(
        "glm-4-9b",
        LayerOrder::Glm,
        [4096, 40, 32, 2, 128, 13696, 151552, 131072],
        5e6,
        1.5625e-7,
    ),
    preset(
        "glm-4-9b-0414",
        LayerOrder::Glm4,
        [4096, 40, 32, 2, 128, 13696, 151552, 32768],
        10000.0,
        1e-5,
    ),
    preset(
        "bench-1.3b",
        LayerOrder::Glm4,
        [2048, 24, 16, 2, 128, 6144, 32000, 32768],
        10000.0,
        1e-5,
    ),
    Preset {
        moe: Some(MoeShape {
            experts: 8,
            top_k: 2,
            expert_ffn: 32,
            first_dense: 1,
            scaling: 2.5,
            qk_norm: true,
        }),
        ..preset(
            "tiny-moe",
            LayerOrder::Glm,
            [64, 3, 4, 2, 16, 128, 512, 512],
            1e6,
            1e-5,
        )
    },
    moe_preset("glm-4.5-air", [4096, 46, 10944], AIR),
    moe_preset("glm-4.5-air-4l", [4096, 4, 10944], AIR),
    moe_preset("glm-4.5", [5120, 92, 12288], GLM45),
    moe_preset("glm-4.5-4l", [5120, 4, 12288], GLM45),
];

/// Looks a preset up by name.
pub fn find_preset(name: &str) -> Result<&'static Preset> {
    PRESETS.iter().find(|p| p.name == name).ok_or_else(|| {
        HalError::invalid(
            "--preset",
            format!(
                "unknown preset `{name}`; presets: {}",
                PRESETS
                    .iter()
                    .map(|p| p.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
    })
}

impl Preset {
    /// Parameter count.
    pub fn parameters(&self) -> usize {
        self.count(|m| m.experts)
    }

    /// Parameters a decode token multiplies (its experts, not all of them;
    /// the embedding table counted whole).
    pub fn active_parameters(&self) -> usize {
        self.count(|m| m.top_k)
    }

    /// Parameters with `experts(moe)` experts per routed layer.
    fn count(&self, experts: impl Fn(&MoeShape) -> usize) -> usize {
        let (h, q, kv) = (
            self.hidden,
            self.heads * self.head_dim,
            self.kv_heads * self.head_dim,
        );
        let attention = h * (q + 2 * kv) + (q + 2 * kv) + q * h + 4 * h;
        let dense = 3 * h * self.ffn;
        let layers: usize = (0..self.layers)
            .map(|l| match &self.moe {
                Some(m) if l >= m.first_dense => {
                    let expert = 3 * h * m.expert_ffn;
                    attention + (experts(m) + 1) * expert + m.experts * (h + 1)
                }
                _ => attention + dense,
            })
            .sum();
        2 * self.vocab * h + layers + h
    }

    /// The config.json (transformers 4 style, HF naming).
    pub fn config_json(&self) -> serde_json::Value {
        let (model_type, arch) = match (self.order, self.moe.is_some()) {
            (_, true) => ("glm4_moe", "Glm4MoeForCausalLM"),
            (LayerOrder::Glm, false) => ("glm", "GlmForCausalLM"),
            (LayerOrder::Glm4, false) => ("glm4", "Glm4ForCausalLM"),
        };
        let eos: Vec<usize> = crate::tokenizer::GLM4_SPECIALS
            .iter()
            .enumerate()
            .filter(|(_, s)| ["<|endoftext|>", "<|user|>", "<|observation|>"].contains(s))
            .map(|(i, _)| crate::tokenizer::special_base(self.vocab) + i)
            .collect();
        let mut config = json!({
            "architectures": [arch], "model_type": model_type, "hidden_size": self.hidden,
            "intermediate_size": self.ffn, "num_hidden_layers": self.layers, "num_attention_heads": self.heads,
            "num_key_value_heads": self.kv_heads, "head_dim": self.head_dim, "vocab_size": self.vocab,
            "max_position_embeddings": self.context, "rms_norm_eps": self.eps, "rope_theta": self.theta,
            "partial_rotary_factor": 0.5, "attention_bias": true, "tie_word_embeddings": false,
            "eos_token_id": eos, "pad_token_id": crate::tokenizer::special_base(self.vocab),
            "torch_dtype": "float32", "glmhal_synthetic_preset": self.name
        });
        if let (Some(m), Some(obj)) = (&self.moe, config.as_object_mut()) {
            for (k, v) in [
                ("n_routed_experts", json!(m.experts)),
                ("num_experts_per_tok", json!(m.top_k)),
                ("moe_intermediate_size", json!(m.expert_ffn)),
                ("n_shared_experts", json!(1)),
                ("first_k_dense_replace", json!(m.first_dense)),
                ("n_group", json!(1)),
                ("topk_group", json!(1)),
                ("norm_topk_prob", json!(true)),
                ("routed_scaling_factor", json!(m.scaling)),
                ("use_qk_norm", json!(m.qk_norm)),
                ("num_nextn_predict_layers", json!(0)),
            ] {
                obj.insert(k.into(), v);
            }
        }
        config
    }
}

/// Writes `preset` as a random checkpoint into `out`: config.json,
/// model.safetensors in `dtype`, and a byte-level tokenizer.json.
pub fn synth(preset: &Preset, out: &Path, dtype: DType, seed: u64) -> Result<()> {
    synth_with(preset, out, dtype, seed, &crate::Progress::default())
}

/// [`synth`], reporting each tensor written to `progress`.
pub fn synth_with(
    preset: &Preset,
    out: &Path,
    dtype: DType,
    seed: u64,
    progress: &crate::Progress,
) -> Result<()> {
    if !DType::FLOATS.contains(&dtype) {
        return Err(HalError::invalid(
            "--dtype",
            format!("synthetic checkpoints are f32, f16 or bf16, not {dtype}"),
        ));
    }
    std::fs::create_dir_all(out)
        .map_err(|e| HalError::io(format!("creating {}", out.display()), e))?;
    let p = preset;
    let (h, q, kv) = (p.hidden, p.heads * p.head_dim, p.kv_heads * p.head_dim);
    // (name, shape, kind)
    let mut tensors: Vec<(String, Vec<usize>, Init)> = vec![(
        "model.embed_tokens.weight".into(),
        vec![p.vocab, h],
        Init::Embedding,
    )];
    for i in 0..p.layers {
        let l = |s: &str| format!("model.layers.{i}.{s}");
        tensors.push((l("input_layernorm.weight"), vec![h], Init::Norm));
        for (n, rows) in [("q_proj", q), ("k_proj", kv), ("v_proj", kv)] {
            tensors.push((
                l(&format!("self_attn.{n}.weight")),
                vec![rows, h],
                Init::Linear,
            ));
            tensors.push((l(&format!("self_attn.{n}.bias")), vec![rows], Init::Bias));
        }
        tensors.push((l("self_attn.o_proj.weight"), vec![h, q], Init::Linear));
        tensors.push((l("post_attention_layernorm.weight"), vec![h], Init::Norm));
        if let Some(m) = &p.moe {
            moe_tensors(p, m, i, &mut tensors);
            continue;
        }
        tensors.push((
            l("mlp.gate_up_proj.weight"),
            vec![2 * p.ffn, h],
            Init::Linear,
        ));
        tensors.push((l("mlp.down_proj.weight"), vec![h, p.ffn], Init::Linear));
        if p.order == LayerOrder::Glm4 {
            tensors.push((l("post_self_attn_layernorm.weight"), vec![h], Init::Norm));
            tensors.push((l("post_mlp_layernorm.weight"), vec![h], Init::Norm));
        }
    }
    tensors.push(("model.norm.weight".into(), vec![h], Init::Norm));
    tensors.push(("lm_head.weight".into(), vec![p.vocab, h], Init::Linear));

    let decl: Vec<(String, DType, Vec<usize>)> = tensors
        .iter()
        .map(|(n, s, _)| (n.clone(), dtype, s.clone()))
        .collect();
    let mut meta = BTreeMap::new();
    meta.insert("format".to_string(), "pt".to_string());
    meta.insert("glmhal_preset".to_string(), p.name.to_string());
    let mut w = SafetensorsWriter::create(&out.join("model.safetensors"), &decl, &meta)?;
    let mut rng = Rng::new(seed);
    const CHUNK: usize = 1 << 20;
    let mut values = Vec::with_capacity(CHUNK);
    for (i, (name, shape, init)) in tensors.iter().enumerate() {
        progress.report("writing tensors", i, tensors.len());
        let numel: usize = shape.iter().product();
        let fan_in = *shape.last().unwrap_or(&1);
        let mut done = 0;
        while done < numel {
            let n = (numel - done).min(CHUNK);
            values.clear();
            values.extend((0..n).map(|_| init.sample(&mut rng, fan_in)));
            w.write_part(name, &quant::from_f32(dtype, &values)?)?;
            done += n;
        }
    }
    progress.report("writing tensors", tensors.len(), tensors.len());
    w.finish()?;
    let write = |file: &str, text: String| {
        glmhal_hal::output::write_atomic(&out.join(file), text.as_bytes())
    };
    write(
        "config.json",
        serde_json::to_string_pretty(&p.config_json()).unwrap_or_default(),
    )?;
    write("tokenizer.json", synthetic_tokenizer_json(p.vocab))?;
    Ok(())
}

/// Layer `i`'s glm4_moe tensors past the attention: q/k norms, then a
/// dense FFN (gate and up apart) or the router, one tensor per expert (as
/// transformers saves them) and the shared expert.
fn moe_tensors(p: &Preset, m: &MoeShape, i: usize, tensors: &mut Vec<(String, Vec<usize>, Init)>) {
    let h = p.hidden;
    let l = |s: &str| format!("model.layers.{i}.{s}");
    if m.qk_norm {
        tensors.push((l("self_attn.q_norm.weight"), vec![p.head_dim], Init::Norm));
        tensors.push((l("self_attn.k_norm.weight"), vec![p.head_dim], Init::Norm));
    }
    let mut ffn = |prefix: String, width: usize| {
        tensors.push((
            format!("{prefix}gate_proj.weight"),
            vec![width, h],
            Init::Linear,
        ));
        tensors.push((
            format!("{prefix}up_proj.weight"),
            vec![width, h],
            Init::Linear,
        ));
        tensors.push((
            format!("{prefix}down_proj.weight"),
            vec![h, width],
            Init::Linear,
        ));
    };
    if i < m.first_dense {
        ffn(l("mlp."), p.ffn);
        return;
    }
    for e in 0..m.experts {
        ffn(l(&format!("mlp.experts.{e}.")), m.expert_ffn);
    }
    ffn(l("mlp.shared_experts."), m.expert_ffn);
    tensors.push((l("mlp.gate.weight"), vec![m.experts, h], Init::Linear));
    tensors.push((
        l("mlp.gate.e_score_correction_bias"),
        vec![m.experts],
        Init::Bias,
    ));
}

/// How a tensor's values are drawn. Uniform draws with the variance of the
/// usual normal initializers keep activations in a realistic range.
#[derive(Clone, Copy, Debug)]
enum Init {
    Embedding,
    Linear,
    Norm,
    Bias,
}

impl Init {
    fn sample(self, rng: &mut Rng, fan_in: usize) -> f32 {
        let u = rng.uniform(-1.0, 1.0);
        let sqrt3 = 3f32.sqrt();
        match self {
            Init::Embedding => u * sqrt3,
            Init::Linear => u * sqrt3 / (fan_in as f32).sqrt(),
            Init::Norm => 1.0 + 0.1 * u,
            Init::Bias => 0.05 * u,
        }
    }
}
