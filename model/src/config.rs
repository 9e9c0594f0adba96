//! Model configs: HF `glm` / `glm4` (both rotary styles), `glm4_moe` and original ChatGLM.

use std::path::Path;

use glmhal_hal::{HalError, Result, RopeMode};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::moe::Moe;

/// Which residual layout each layer uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LayerOrder {
    /// ChatGLM2/3, GLM-4-9B, GLM-Edge: `h = x + Attn(N(x)); out = h + MLP(N(h))`.
    Glm,
    /// GLM-4-0414: extra norms after attention and after the MLP.
    Glm4,
}

/// How checkpoint tensors are named.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Naming {
    /// `model.layers.N.self_attn.q_proj...` (transformers `GlmForCausalLM`, `Glm4ForCausalLM`).
    Hf,
    /// `transformer.encoder.layers.N.self_attention.query_key_value...` (THUDM originals).
    ChatGlm,
    /// llama.cpp's GGUF names (`blk.N.attn_qkv`, ...).
    Gguf,
}

/// Everything the executor needs to know about a model's shape.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ModelConfig {
    /// Layer order.
    pub order: LayerOrder,
    /// Tensor naming.
    pub naming: Naming,
    /// Hidden size.
    pub hidden: usize,
    /// MLP width F (the fused gate/up projection has 2F rows).
    pub intermediate: usize,
    /// Number of decoder layers.
    pub layers: usize,
    /// Query heads.
    pub heads: usize,
    /// KV heads.
    pub kv_heads: usize,
    /// Dimension of one head.
    pub head_dim: usize,
    /// Vocabulary size (rows of the embedding and the lm_head).
    pub vocab: usize,
    /// Longest context the model was trained for.
    pub max_positions: usize,
    /// RMSNorm epsilon.
    pub rms_eps: f64,
    /// Rotary base.
    pub rope_theta: f64,
    /// Rotated dims per head.
    pub rotary_dim: usize,
    /// Whether q, k and v have biases.
    pub qkv_bias: bool,
    /// Token ids that end generation.
    pub eos_token_ids: Vec<u32>,
    /// Whether lm_head shares the embedding.
    pub tie_word_embeddings: bool,
    /// How rope pairs the rotated dims: GLM and GLM-4 interleave, glm4_moe
    /// rotates halves (NeoX).
    pub rope_mode: RopeMode,
    /// RMSNorm over each head of q and k before rope (glm4_moe `use_qk_norm`).
    pub qk_norm: bool,
    /// The mixture-of-experts FFN (glm4_moe), if any.
    pub moe: Option<Moe>,
}

impl ModelConfig {
    /// Width of the fused q|k|v projection.
    pub fn qkv_width(&self) -> usize {
        (self.heads + 2 * self.kv_heads) * self.head_dim
    }

    /// Reads and parses `config.json`.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| HalError::io(format!("reading {}", path.display()), e))?;
        let value: Value = serde_json::from_str(&text).map_err(|e| {
            HalError::invalid(path.display().to_string(), format!("not valid JSON: {e}"))
        })?;
        Self::from_json(&value).map_err(|e| match e {
            HalError::InvalidArgument { message, .. } => {
                HalError::invalid(path.display().to_string(), message)
            }
            other => other,
        })
    }

    /// Parses a config object.
    pub fn from_json(v: &Value) -> Result<Self> {
        let obj = v
            .as_object()
            .ok_or_else(|| bad("the config is not a JSON object"))?;
        let model_type = obj.get("model_type").and_then(Value::as_str).unwrap_or("");
        let archs: Vec<&str> = obj
            .get("architectures")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let config = match model_type {
            "glm" => hf(obj, LayerOrder::Glm),
            "glm4" => hf(obj, LayerOrder::Glm4),
            "glm4_moe" => glm4_moe(obj),
            "chatglm" => chatglm(obj),
            "" if archs.iter().any(|a| a.starts_with("ChatGLM")) => chatglm(obj),
            other => Err(bad(format!(
                "unknown architecture: model_type `{other}` (architectures {archs:?}); glmhal reads glm, glm4, glm4_moe and chatglm"
            ))),
        }?;
        config.check()?;
        Ok(config)
    }

    pub(crate) fn check(&self) -> Result<()> {
        let positive = [
            ("hidden_size", self.hidden),
            ("intermediate_size", self.intermediate),
            ("num_hidden_layers", self.layers),
            ("num_attention_heads", self.heads),
            ("num_key_value_heads", self.kv_heads),
            ("head_dim", self.head_dim),
            ("vocab_size", self.vocab),
        ];
        if let Some((k, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(bad(format!("`{k}` must be positive")));
        }
        if let Some(id) = self
            .eos_token_ids
            .iter()
            .find(|id| **id as usize >= self.vocab)
        {
            return Err(bad(format!(
                "end-of-sequence id {id} is not below the vocabulary size {}",
                self.vocab
            )));
        }
        if !self.heads.is_multiple_of(self.kv_heads) {
            return Err(bad(format!(
                "{} attention heads are not a multiple of {} key/value heads",
                self.heads, self.kv_heads
            )));
        }
        if self.rotary_dim == 0
            || !self.rotary_dim.is_multiple_of(2)
            || self.rotary_dim > self.head_dim
        {
            return Err(bad(format!(
                "rotary dims {} must be even and at most head_dim {}",
                self.rotary_dim, self.head_dim
            )));
        }
        if let Some(moe) = &self.moe {
            moe.check()?;
        }
        let theta_ok = self.rope_theta.is_finite() && self.rope_theta > 0.0;
        let eps_ok = self.rms_eps.is_finite() && self.rms_eps >= 0.0;
        if !theta_ok || !eps_ok {
            return Err(bad(
                "rope theta must be positive and the norm epsilon non-negative",
            ));
        }
        Ok(())
    }
}

fn bad(msg: impl Into<String>) -> HalError {
    HalError::invalid("config.json", msg)
}

fn usize_key(obj: &Map<String, Value>, key: &str) -> Result<usize> {
    match obj.get(key) {
        None | Some(Value::Null) => Err(bad(format!("missing key `{key}`"))),
        Some(v) => v
            .as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| bad(format!("`{key}` must be a non-negative integer, got {v}"))),
    }
}

fn opt_f64(obj: &Map<String, Value>, key: &str) -> Result<Option<f64>> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_f64()
            .map(Some)
            .ok_or_else(|| bad(format!("`{key}` must be a number, got {v}"))),
    }
}

fn opt_bool(obj: &Map<String, Value>, key: &str, default: bool) -> Result<bool> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => v
            .as_bool()
            .ok_or_else(|| bad(format!("`{key}` must be true or false, got {v}"))),
    }
}

fn eos_ids(obj: &Map<String, Value>) -> Result<Vec<u32>> {
    let to_id = |v: &Value| {
        v.as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| bad(format!("`eos_token_id` entries must be token ids, got {v}")))
    };
    match obj.get("eos_token_id") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(a)) => a.iter().map(to_id).collect(),
        Some(v) => Ok(vec![to_id(v)?]),
    }
}

fn hf(obj: &Map<String, Value>, order: LayerOrder) -> Result<ModelConfig> {
    let hidden = usize_key(obj, "hidden_size")?;
    let heads = usize_key(obj, "num_attention_heads")?;
    let head_dim = match obj.get("head_dim") {
        None | Some(Value::Null) => 128, // transformers' default for both glm and glm4
        Some(_) => usize_key(obj, "head_dim")?,
    };
    // transformers 5 nests the rotary settings; transformers 4 keeps them flat.
    let rope = obj.get("rope_parameters").and_then(Value::as_object);
    let (theta, factor) = match rope {
        Some(r) => (
            opt_f64(r, "rope_theta")?,
            opt_f64(r, "partial_rotary_factor")?,
        ),
        None => (
            opt_f64(obj, "rope_theta")?,
            opt_f64(obj, "partial_rotary_factor")?,
        ),
    };
    let factor = factor.unwrap_or(0.5);
    if !(factor > 0.0 && factor <= 1.0) {
        return Err(bad(format!(
            "`partial_rotary_factor` must be in (0, 1], got {factor}"
        )));
    }
    Ok(ModelConfig {
        order,
        naming: Naming::Hf,
        hidden,
        intermediate: usize_key(obj, "intermediate_size")?,
        layers: usize_key(obj, "num_hidden_layers")?,
        heads,
        kv_heads: usize_key(obj, "num_key_value_heads")?,
        head_dim,
        vocab: usize_key(obj, "vocab_size")?,
        max_positions: usize_key(obj, "max_position_embeddings")?,
        rms_eps: opt_f64(obj, "rms_norm_eps")?.unwrap_or(1e-5),
        rope_theta: theta.unwrap_or(10000.0),
        rotary_dim: (head_dim as f64 * factor).round() as usize,
        qkv_bias: opt_bool(obj, "attention_bias", true)?,
        eos_token_ids: eos_ids(obj)?,
        tie_word_embeddings: opt_bool(obj, "tie_word_embeddings", false)?,
        rope_mode: RopeMode::Interleaved,
        qk_norm: false,
        moe: None,
    })
}

/// GLM-4.5/4.6/4.7: the `glm` layout with NeoX rope, optional q/k norms,
/// q/k/v bias off unless asked, and experts from `first_k_dense_replace` on.
fn glm4_moe(obj: &Map<String, Value>) -> Result<ModelConfig> {
    let mut c = hf(obj, LayerOrder::Glm)?;
    // transformers' Glm4Moe: head_dim defaults to hidden / heads.
    if matches!(obj.get("head_dim"), None | Some(Value::Null)) {
        if c.heads == 0 || !c.hidden.is_multiple_of(c.heads) {
            return Err(bad(format!(
                "hidden_size {} is not divisible by num_attention_heads {} (and no head_dim gives the head size)",
                c.hidden, c.heads
            )));
        }
        let factor = c.rotary_dim as f64 / c.head_dim as f64;
        c.head_dim = c.hidden / c.heads;
        c.rotary_dim = (c.head_dim as f64 * factor).round() as usize;
    }
    c.rope_mode = RopeMode::Neox;
    c.qk_norm = opt_bool(obj, "use_qk_norm", false)?;
    c.qkv_bias = opt_bool(obj, "attention_bias", false)?;
    let count = |key: &str, default: usize| match obj.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(_) => usize_key(obj, key),
    };
    c.moe = Some(Moe {
        experts: usize_key(obj, "n_routed_experts")?,
        top_k: usize_key(obj, "num_experts_per_tok")?,
        expert_ffn: usize_key(obj, "moe_intermediate_size")?,
        shared_experts: count("n_shared_experts", 1)?,
        first_dense: count("first_k_dense_replace", 1)?,
        n_group: count("n_group", 1)?,
        topk_group: count("topk_group", 1)?,
        normalize: opt_bool(obj, "norm_topk_prob", true)?,
        scaling: opt_f64(obj, "routed_scaling_factor")?.unwrap_or(1.0),
        mtp_layers: count("num_nextn_predict_layers", 0)?,
    });
    Ok(c)
}

fn chatglm(obj: &Map<String, Value>) -> Result<ModelConfig> {
    let hidden = usize_key(obj, "hidden_size")?;
    let heads = usize_key(obj, "num_attention_heads")?;
    let head_dim = match obj.get("kv_channels") {
        None | Some(Value::Null) if heads == 0 || !hidden.is_multiple_of(heads) => {
            return Err(bad(format!(
                "hidden_size {hidden} is not divisible by num_attention_heads {heads} (and no kv_channels gives the head size)"
            )))
        }
        None | Some(Value::Null) => hidden / heads,
        Some(_) => usize_key(obj, "kv_channels")?,
    };
    let kv_heads = if opt_bool(obj, "multi_query_attention", false)? {
        usize_key(obj, "multi_query_group_num")?
    } else {
        heads
    };
    if !opt_bool(obj, "rmsnorm", true)? {
        return Err(bad(
            "`rmsnorm: false` (LayerNorm ChatGLM variants) is not supported",
        ));
    }
    if opt_bool(obj, "apply_residual_connection_post_layernorm", false)? {
        return Err(bad(
            "`apply_residual_connection_post_layernorm: true` is not supported",
        ));
    }
    let rope_ratio = opt_f64(obj, "rope_ratio")?.unwrap_or(1.0);
    let vocab = match obj.get("padded_vocab_size") {
        Some(_) => usize_key(obj, "padded_vocab_size")?,
        None => usize_key(obj, "vocab_size")?,
    };
    Ok(ModelConfig {
        order: LayerOrder::Glm,
        naming: Naming::ChatGlm,
        hidden,
        intermediate: usize_key(obj, "ffn_hidden_size")?,
        layers: usize_key(obj, "num_layers")?,
        heads,
        kv_heads,
        head_dim,
        vocab,
        max_positions: usize_key(obj, "seq_length")?,
        rms_eps: opt_f64(obj, "layernorm_epsilon")?.unwrap_or(1e-5),
        rope_theta: 10000.0 * rope_ratio,
        rotary_dim: head_dim / 2,
        qkv_bias: opt_bool(obj, "add_qkv_bias", true)?,
        eos_token_ids: eos_ids(obj)?,
        tie_word_embeddings: false,
        rope_mode: RopeMode::Interleaved,
        qk_norm: false,
        moe: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn glm4_tf5() -> Value {
        json!({
            "model_type": "glm4", "hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 2,
            "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16, "vocab_size": 100,
            "max_position_embeddings": 256, "rms_norm_eps": 1e-5, "attention_bias": true,
            "rope_parameters": {"rope_type": "default", "rope_theta": 5e6, "partial_rotary_factor": 0.5},
            "eos_token_id": [7, 9]
        })
    }

    #[test]
    fn both_rotary_styles() {
        let c = ModelConfig::from_json(&glm4_tf5()).unwrap();
        assert_eq!(c.order, LayerOrder::Glm4);
        assert_eq!((c.rope_theta, c.rotary_dim), (5e6, 8));
        assert_eq!(c.eos_token_ids, vec![7, 9]);
        let mut v = glm4_tf5();
        let o = v.as_object_mut().unwrap();
        o.remove("rope_parameters");
        o.insert("model_type".into(), json!("glm"));
        o.insert("rope_theta".into(), json!(10000.0));
        o.insert("partial_rotary_factor".into(), json!(0.5));
        o.insert("eos_token_id".into(), json!(3));
        let c = ModelConfig::from_json(&v).unwrap();
        assert_eq!(
            (c.order, c.rope_theta, c.rotary_dim),
            (LayerOrder::Glm, 10000.0, 8)
        );
        assert_eq!(c.eos_token_ids, vec![3]);
    }

    #[test]
    fn chatglm_keys() {
        let v = json!({
            "architectures": ["ChatGLMModel"], "model_type": "chatglm", "num_layers": 40, "hidden_size": 4096,
            "ffn_hidden_size": 13696, "kv_channels": 128, "num_attention_heads": 32, "multi_query_attention": true,
            "multi_query_group_num": 2, "padded_vocab_size": 151552, "seq_length": 131072,
            "layernorm_epsilon": 1.5625e-07, "add_qkv_bias": true, "rope_ratio": 500, "rmsnorm": true,
            "eos_token_id": [151329, 151336, 151338]
        });
        let c = ModelConfig::from_json(&v).unwrap();
        assert_eq!(c.naming, Naming::ChatGlm);
        assert_eq!(
            (c.kv_heads, c.head_dim, c.rotary_dim, c.rope_theta),
            (2, 128, 64, 5e6)
        );
        assert_eq!(c.qkv_width(), (32 + 4) * 128);
    }

    #[test]
    fn errors_name_the_key_or_architecture() {
        let mut v = glm4_tf5();
        v.as_object_mut().unwrap().remove("hidden_size");
        assert!(ModelConfig::from_json(&v)
            .unwrap_err()
            .to_string()
            .contains("missing key `hidden_size`"));
        let mut v = glm4_tf5();
        v.as_object_mut()
            .unwrap()
            .insert("model_type".into(), json!("llama"));
        assert!(ModelConfig::from_json(&v)
            .unwrap_err()
            .to_string()
            .contains("unknown architecture"));
        let mut v = glm4_tf5();
        v.as_object_mut()
            .unwrap()
            .insert("num_key_value_heads".into(), json!(3));
        assert!(ModelConfig::from_json(&v).is_err());
        let mut v = glm4_tf5();
        v.as_object_mut()
            .unwrap()
            .insert("vocab_size".into(), json!("big"));
        assert!(ModelConfig::from_json(&v)
            .unwrap_err()
            .to_string()
            .contains("vocab_size"));
    }

    #[test]
    fn sizes_that_do_not_divide_and_ids_past_the_vocabulary_are_refused() {
        let chatglm = serde_json::json!({
            "architectures": ["ChatGLMModel"], "hidden_size": 64, "num_attention_heads": 6,
            "num_layers": 1, "ffn_hidden_size": 128, "padded_vocab_size": 100, "seq_length": 64,
            "layernorm_epsilon": 1e-5,
        });
        let err = ModelConfig::from_json(&chatglm).unwrap_err().to_string();
        assert!(
            err.contains("hidden_size 64 is not divisible by num_attention_heads 6"),
            "{err}"
        );
        let glm4 = serde_json::json!({
            "model_type": "glm4", "hidden_size": 64, "intermediate_size": 128,
            "num_hidden_layers": 1, "num_attention_heads": 4, "num_key_value_heads": 2,
            "head_dim": 16, "vocab_size": 100, "max_position_embeddings": 64,
            "rms_norm_eps": 1e-5, "eos_token_id": 150,
        });
        let err = ModelConfig::from_json(&glm4).unwrap_err().to_string();
        assert!(err.contains("end-of-sequence id 150"), "{err}");
    }
}
