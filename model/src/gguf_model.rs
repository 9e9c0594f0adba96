//! A GLM model in a GGUF file: the config from `chatglm.*` / `glm4.*` /
//! `glm4moe.*` metadata, llama.cpp's tensor names mapped to the executor's
//! canonical weights, and the `gpt2` BPE tokenizer stored in `tokenizer.ggml.*`.

use glmhal_hal::{HalError, Result};

use crate::config::{LayerOrder, ModelConfig, Naming};
use crate::gguf::{GgufFile, Value};
use crate::pretokenize::GLM4_PATTERN;
use crate::weight_source::WeightSource;

/// The architectures glmhal reads, and the layer order each implies.
pub const ARCHITECTURES: [(&str, LayerOrder); 3] = [
    ("chatglm", LayerOrder::Glm),
    ("glm4", LayerOrder::Glm4),
    ("glm4moe", LayerOrder::Glm),
];

pub(crate) fn missing(file: &GgufFile, key: &str) -> HalError {
    HalError::invalid(
        file.path().display().to_string(),
        format!("missing required metadata `{key}`"),
    )
}

pub(crate) fn count(file: &GgufFile, key: &str) -> Result<Option<usize>> {
    match file.get(key) {
        None => Ok(None),
        Some(v) => v
            .as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| {
                HalError::invalid(
                    file.path().display().to_string(),
                    format!("metadata `{key}` is {v:?}, not a count"),
                )
            }),
    }
}

pub(crate) fn number(file: &GgufFile, key: &str) -> Result<Option<f64>> {
    match file.get(key) {
        None => Ok(None),
        Some(v) => v.as_f64().map(Some).ok_or_else(|| {
            HalError::invalid(
                file.path().display().to_string(),
                format!("metadata `{key}` is {v:?}, not a number"),
            )
        }),
    }
}

/// The model's shape from the file's metadata and tensor shapes.
pub fn config(file: &GgufFile) -> Result<ModelConfig> {
    let arch = file
        .get("general.architecture")
        .and_then(Value::as_str)
        .ok_or_else(|| missing(file, "general.architecture"))?
        .to_string();
    let order = ARCHITECTURES
        .iter()
        .find(|(a, _)| *a == arch)
        .map(|(_, o)| *o)
        .ok_or_else(|| {
            HalError::invalid(
                file.path().display().to_string(),
                format!("architecture `{arch}` is not a GLM model (glmhal reads chatglm, glm4 and glm4moe)"),
            )
        })?;
    let key = |k: &str| format!("{arch}.{k}");
    let required = |k: &str| count(file, &key(k))?.ok_or_else(|| missing(file, &key(k)));
    let hidden = required("embedding_length")?;
    let heads = required("attention.head_count")?;
    let head_dim = match count(file, &key("attention.key_length"))? {
        Some(d) => d,
        None if heads > 0 && hidden.is_multiple_of(heads) => hidden / heads,
        None => {
            return Err(HalError::invalid(
                file.path().display().to_string(),
                format!(
                    "embedding_length {hidden} is not divisible by attention.head_count {heads} (and no attention.key_length gives the head size)"
                ),
            ))
        }
    };
    let vocab = file
        .info("token_embd.weight")
        .map(|t| t.shape[0])
        .ok_or_else(|| {
            HalError::invalid(
                file.path().display().to_string(),
                "missing tensor `token_embd.weight`",
            )
        })?;
    let mut eos: Vec<u32> = [
        "tokenizer.ggml.eos_token_id",
        "tokenizer.ggml.eot_token_id",
        "tokenizer.ggml.eom_token_id",
    ]
    .iter()
    .filter_map(|k| file.get(k).and_then(Value::as_u64))
    .filter_map(|v| u32::try_from(v).ok())
    .collect();
    eos.dedup();
    let moe = (arch == "glm4moe")
        .then(|| crate::moe_sources::gguf_moe(file, &key))
        .transpose()?;
    // llama.cpp counts the next-token-prediction layers in block_count.
    let layers = required("block_count")?.saturating_sub(moe.as_ref().map_or(0, |m| m.mtp_layers));
    let config = ModelConfig {
        order,
        naming: Naming::Gguf,
        hidden,
        intermediate: required("feed_forward_length")?,
        layers,
        heads,
        kv_heads: count(file, &key("attention.head_count_kv"))?.unwrap_or(heads),
        head_dim,
        vocab,
        max_positions: required("context_length")?,
        rms_eps: number(file, &key("attention.layer_norm_rms_epsilon"))?
            .ok_or_else(|| missing(file, &key("attention.layer_norm_rms_epsilon")))?,
        rope_theta: number(file, &key("rope.freq_base"))?.unwrap_or(10000.0),
        rotary_dim: count(file, &key("rope.dimension_count"))?.unwrap_or(head_dim / 2),
        qkv_bias: file.info("blk.0.attn_qkv.bias").is_some()
            || file.info("blk.0.attn_q.bias").is_some(),
        eos_token_ids: eos,
        tie_word_embeddings: file.info("output.weight").is_none(),
        rope_mode: if moe.is_some() {
            glmhal_hal::RopeMode::Neox
        } else {
            glmhal_hal::RopeMode::Interleaved
        },
        qk_norm: file.info("blk.0.attn_q_norm.weight").is_some(),
        moe,
    };
    config.check().map_err(|e| match e {
        HalError::InvalidArgument { message, .. } => {
            HalError::invalid(file.path().display().to_string(), message)
        }
        other => other,
    })?;
    Ok(config)
}

/// The canonical weights and the stored tensors each comes from. Fused
/// `attn_qkv` or separate `attn_q/k/v` (fused here), fused `ffn_up` (gate
/// first) or separate `ffn_gate` + `ffn_up`.
pub fn weights(file: &GgufFile, c: &ModelConfig) -> Vec<WeightSource> {
    let (h, v, f) = (c.hidden, c.vocab, c.intermediate);
    let (q_rows, kv_rows) = (c.heads * c.head_dim, c.kv_heads * c.head_dim);
    let one = |stored: &str, name: String, shape: Vec<usize>| WeightSource {
        name,
        parts: vec![(stored.to_string(), shape)],
        ..Default::default()
    };
    let mut out = vec![one("token_embd.weight", "embed".into(), vec![v, h])];
    for i in 0..c.layers {
        let b = |s: &str| format!("blk.{i}.{s}");
        let l = |s: &str| format!("layers.{i}.{s}");
        let mut kinds = vec![("weight", vec![c.qkv_width(), h])];
        if c.qkv_bias {
            kinds.push(("bias", vec![c.qkv_width()]));
        }
        for (kind, shape) in kinds {
            let fused = b(&format!("attn_qkv.{kind}"));
            if file.info(&fused).is_some() {
                out.push(one(&fused, l(&format!("qkv.{kind}")), shape));
            } else {
                let parts = [("attn_q", q_rows), ("attn_k", kv_rows), ("attn_v", kv_rows)]
                    .iter()
                    .map(|(n, rows)| {
                        let mut s = shape.clone();
                        s[0] = *rows;
                        (b(&format!("{n}.{kind}")), s)
                    })
                    .collect();
                out.push(WeightSource {
                    name: l(&format!("qkv.{kind}")),
                    parts,
                    ..Default::default()
                });
            }
        }
        out.push(one(&b("attn_norm.weight"), l("input_norm"), vec![h]));
        out.push(one(
            &b("attn_output.weight"),
            l("o.weight"),
            vec![h, q_rows],
        ));
        if let Some(moe) = &c.moe {
            // glm4moe: the FFN's input norm is `post_attention_norm`.
            out.push(one(
                &b("post_attention_norm.weight"),
                l("mlp_norm"),
                vec![h],
            ));
            if c.qk_norm {
                out.push(one(&b("attn_q_norm.weight"), l("q_norm"), vec![c.head_dim]));
                out.push(one(&b("attn_k_norm.weight"), l("k_norm"), vec![c.head_dim]));
            }
            crate::moe_sources::gguf_ffn(c, moe, i, &mut out);
            continue;
        }
        out.push(one(&b("ffn_norm.weight"), l("mlp_norm"), vec![h]));
        if file.info(&b("ffn_gate.weight")).is_some() {
            out.push(WeightSource {
                name: l("gate_up.weight"),
                parts: vec![
                    (b("ffn_gate.weight"), vec![f, h]),
                    (b("ffn_up.weight"), vec![f, h]),
                ],
                ..Default::default()
            });
        } else {
            out.push(one(
                &b("ffn_up.weight"),
                l("gate_up.weight"),
                vec![2 * f, h],
            ));
        }
        out.push(one(&b("ffn_down.weight"), l("down.weight"), vec![h, f]));
        if c.order == LayerOrder::Glm4 {
            out.push(one(
                &b("post_attention_norm.weight"),
                l("post_attn_norm"),
                vec![h],
            ));
            out.push(one(&b("post_ffw_norm.weight"), l("post_mlp_norm"), vec![h]));
        }
    }
    out.push(one("output_norm.weight", "final_norm".into(), vec![h]));
    let head = if c.tie_word_embeddings {
        "token_embd.weight"
    } else {
        "output.weight"
    };
    out.push(one(head, "lm_head".into(), vec![v, h]));
    out
}

/// A Hugging Face `tokenizer.json` equivalent to the file's `gpt2` BPE
/// tokenizer (tokens, merges, control tokens as specials, GLM-4's split
/// pattern), or why there is none.
pub fn tokenizer_json(file: &GgufFile) -> Result<String> {
    let ctx = file.path().display().to_string();
    let bad = |m: String| HalError::invalid(&ctx, m);
    let model = file
        .get("tokenizer.ggml.model")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            bad(
                "no tokenizer in the file (tokenizer.ggml.model); pass token ids with --tokens"
                    .into(),
            )
        })?;
    if model == "none" || model == "no_vocab" {
        return Err(bad(
            "the file has no tokenizer (tokenizer.ggml.model = none); pass token ids with --tokens"
                .into(),
        ));
    }
    if model != "gpt2" {
        return Err(bad(format!(
            "tokenizer kind `{model}` is not supported (glmhal reads GLM-4's gpt2 BPE); pass token ids with --tokens"
        )));
    }
    let strings = |key: &str| -> Result<Vec<String>> {
        file.get(key)
            .and_then(Value::as_array)
            .ok_or_else(|| bad(format!("missing `{key}`")))?
            .iter()
            .map(|v| {
                v.as_str()
                    .map(String::from)
                    .ok_or_else(|| bad(format!("`{key}` holds a non-string")))
            })
            .collect()
    };
    let tokens = strings("tokenizer.ggml.tokens")?;
    let merges = match file.get("tokenizer.ggml.merges") {
        Some(_) => strings("tokenizer.ggml.merges")?,
        None => Vec::new(),
    };
    let types: Vec<u64> = file
        .get("tokenizer.ggml.token_type")
        .and_then(Value::as_array)
        .map(|a| a.iter().map(|v| v.as_u64().unwrap_or(1)).collect())
        .unwrap_or_default();
    let mut vocab = serde_json::Map::new();
    let mut added = Vec::new();
    for (id, token) in tokens.iter().enumerate() {
        // 3 = control, 4 = user-defined: matched whole in the text.
        if matches!(types.get(id), Some(3 | 4)) {
            added.push(
                serde_json::json!({"id": id, "content": token, "single_word": false,
                "lstrip": false, "rstrip": false, "normalized": false, "special": true}),
            );
        }
        vocab.entry(token.clone()).or_insert(serde_json::json!(id));
    }
    let doc = serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": added,
        "normalizer": null,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": GLM4_PATTERN}, "behavior": "Isolated", "invert": false},
            {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false}
        ]},
        "post_processor": null,
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
        "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
            "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
            "vocab": vocab, "merges": merges}
    });
    serde_json::to_string(&doc).map_err(|e| bad(e.to_string()))
}
