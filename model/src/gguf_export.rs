//! Any checkpoint glmhal reads, written as GGUF in llama.cpp's layout:
//! `chatglm` (fused `attn_qkv`) for the GLM layer order, `glm4` (separate
//! `attn_q/k/v`, `post_attention_norm`, `post_ffw_norm`) for GLM-4-0414,
//! `glm4moe` (separate gate and up, `post_attention_norm` before the FFN,
//! experts stacked in 3-D tensors, the router in F32) for GLM-4.5;
//! matrices in the chosen type, norms and biases in F32; the `gpt2` BPE
//! tokenizer from a `tokenizer.json` when the model has one.

use std::borrow::Cow;
use std::ops::Range;
use std::path::Path;

use glmhal_hal::{quant, DType, HalError, Result};
use serde_json::Value as Json;

use crate::checkpoint::{Checkpoint, WeightSource};
use crate::config::{LayerOrder, ModelConfig};
use crate::gguf::GgmlType;
use crate::gguf_write::{write, Meta, TensorSpec};

/// One tensor to write: which canonical weight, which of its rows.
struct Piece {
    spec: TensorSpec,
    source: usize,
    rows: Range<usize>,
}

/// llama.cpp's `general.file_type` for a matrix type.
fn file_type(dtype: DType) -> u32 {
    match dtype {
        DType::F32 => 0,
        DType::F16 => 1,
        DType::Q4_0 => 2,
        DType::Q8_0 => 7,
        DType::Bf16 => 32,
        DType::I32 => 0,
    }
}

/// What decides a canonical weight's GGUF names.
struct Layout {
    /// The llama.cpp architecture written.
    arch: &'static str,
    /// Rows of q, k and v in the fused projection.
    qkv_rows: [usize; 3],
    /// Rows of the gate half of the dense and shared FFNs' fused gate/up.
    gate_rows: [usize; 2],
    /// lm_head is the embedding.
    tied: bool,
}

/// The GGUF name(s) of a canonical weight, with the row range each takes.
fn names(canonical: &str, layout: &Layout) -> Vec<(String, Range<usize>)> {
    let glm4 = layout.arch != "chatglm";
    let moe = layout.arch == "glm4moe";
    let tied = layout.tied;
    let whole = |n: &str| vec![(n.to_string(), 0..usize::MAX)];
    match canonical {
        "embed" => whole("token_embd.weight"),
        "final_norm" => whole("output_norm.weight"),
        "lm_head" if tied => Vec::new(),
        "lm_head" => whole("output.weight"),
        _ => {
            let Some(rest) = canonical.strip_prefix("layers.") else {
                return Vec::new();
            };
            let (layer, part) = rest.split_once('.').unwrap_or((rest, ""));
            let b = |s: &str| format!("blk.{layer}.{s}");
            match part {
                "qkv.weight" | "qkv.bias" => {
                    let kind = &part[4..];
                    if glm4 {
                        let [q, k, _] = layout.qkv_rows;
                        vec![
                            (b(&format!("attn_q.{kind}")), 0..q),
                            (b(&format!("attn_k.{kind}")), q..q + k),
                            (b(&format!("attn_v.{kind}")), q + k..usize::MAX),
                        ]
                    } else {
                        vec![(b(&format!("attn_qkv.{kind}")), 0..usize::MAX)]
                    }
                }
                "input_norm" => vec![(b("attn_norm.weight"), 0..usize::MAX)],
                _ if moe => moe_names(part, layout, &b),
                "o.weight" => vec![(b("attn_output.weight"), 0..usize::MAX)],
                "mlp_norm" => vec![(b("ffn_norm.weight"), 0..usize::MAX)],
                "gate_up.weight" => vec![(b("ffn_up.weight"), 0..usize::MAX)],
                "down.weight" => vec![(b("ffn_down.weight"), 0..usize::MAX)],
                "post_attn_norm" => vec![(b("post_attention_norm.weight"), 0..usize::MAX)],
                "post_mlp_norm" => vec![(b("post_ffw_norm.weight"), 0..usize::MAX)],
                _ => Vec::new(),
            }
        }
    }
}

/// glm4moe's names of a layer's weights other than q/k/v and the input norm.
fn moe_names(
    part: &str,
    layout: &Layout,
    b: &dyn Fn(&str) -> String,
) -> Vec<(String, Range<usize>)> {
    let whole = |n: &str| vec![(b(n), 0..usize::MAX)];
    let split =
        |gate: &str, up: &str, rows: usize| vec![(b(gate), 0..rows), (b(up), rows..usize::MAX)];
    match part {
        "o.weight" => whole("attn_output.weight"),
        "q_norm" => whole("attn_q_norm.weight"),
        "k_norm" => whole("attn_k_norm.weight"),
        "mlp_norm" => whole("post_attention_norm.weight"),
        "gate_up.weight" => split("ffn_gate.weight", "ffn_up.weight", layout.gate_rows[0]),
        "down.weight" => whole("ffn_down.weight"),
        "router.weight" => whole("ffn_gate_inp.weight"),
        "router.bias" => whole("exp_probs_b.bias"),
        "experts.gate.weight" => whole("ffn_gate_exps.weight"),
        "experts.up.weight" => whole("ffn_up_exps.weight"),
        "experts.down.weight" => whole("ffn_down_exps.weight"),
        "shared.gate_up.weight" => split(
            "ffn_gate_shexp.weight",
            "ffn_up_shexp.weight",
            layout.gate_rows[1],
        ),
        "shared.down.weight" => whole("ffn_down_shexp.weight"),
        _ => Vec::new(),
    }
}

/// `tokenizer.ggml.*` from a Hugging Face BPE `tokenizer.json`: tokens by
/// id (gaps and the rest of the vocabulary filled with unused `[PADn]`),
/// their types (added specials are control tokens) and the merges.
fn tokenizer_metadata(path: &Path, vocab: usize, pre: &str) -> Result<Vec<(String, Meta)>> {
    let ctx = path.display().to_string();
    let bad = |m: &str| HalError::invalid(&ctx, m.to_string());
    let text =
        std::fs::read_to_string(path).map_err(|e| HalError::io(format!("reading {ctx}"), e))?;
    let doc: Json = serde_json::from_str(&text).map_err(|e| bad(&format!("not JSON: {e}")))?;
    let model = doc.get("model").ok_or_else(|| bad("no `model`"))?;
    if model.get("type").and_then(Json::as_str) != Some("BPE") {
        return Err(bad("only BPE tokenizers are written to GGUF"));
    }
    let mut tokens: Vec<Option<String>> = vec![None; vocab];
    let mut types = vec![5i32; vocab];
    let map = model
        .get("vocab")
        .and_then(Json::as_object)
        .ok_or_else(|| bad("no `model.vocab`"))?;
    let mut place = |token: &str, id: Option<u64>, ty: i32| -> Result<()> {
        let id = id
            .and_then(|i| usize::try_from(i).ok())
            .ok_or_else(|| bad("a token id is not a number"))?;
        if id >= vocab {
            return Err(bad(&format!(
                "token `{token}` has id {id}, outside the model's {vocab} rows"
            )));
        }
        tokens[id] = Some(token.to_string());
        types[id] = ty;
        Ok(())
    };
    for (token, id) in map {
        place(token, id.as_u64(), 1)?;
    }
    for added in doc
        .get("added_tokens")
        .and_then(Json::as_array)
        .into_iter()
        .flatten()
    {
        let content = added
            .get("content")
            .and_then(Json::as_str)
            .unwrap_or_default();
        let special = added
            .get("special")
            .and_then(Json::as_bool)
            .unwrap_or(false);
        place(
            content,
            added.get("id").and_then(Json::as_u64),
            if special { 3 } else { 4 },
        )?;
    }
    let merges: Vec<String> = model
        .get("merges")
        .and_then(Json::as_array)
        .into_iter()
        .flatten()
        .filter_map(|m| match m {
            Json::String(s) => Some(s.clone()),
            Json::Array(pair) => Some(
                pair.iter()
                    .filter_map(Json::as_str)
                    .collect::<Vec<_>>()
                    .join(" "),
            ),
            _ => None,
        })
        .collect();
    let tokens: Vec<String> = tokens
        .into_iter()
        .enumerate()
        .map(|(i, t)| t.unwrap_or_else(|| format!("[PAD{i}]")))
        .collect();
    Ok(vec![
        ("tokenizer.ggml.model".to_string(), Meta::Str("gpt2".into())),
        ("tokenizer.ggml.pre".to_string(), Meta::Str(pre.into())),
        ("tokenizer.ggml.tokens".to_string(), Meta::StrArray(tokens)),
        (
            "tokenizer.ggml.token_type".to_string(),
            Meta::I32Array(types),
        ),
        ("tokenizer.ggml.merges".to_string(), Meta::StrArray(merges)),
    ])
}

/// Writes `checkpoint` to `out` with matrices as `matrix` (rows that are
/// not whole blocks of a quantized type stay F16), under `name`. Returns
/// the number of tensors written.
pub fn export(checkpoint: &Checkpoint, out: &Path, matrix: DType, name: &str) -> Result<usize> {
    export_with(checkpoint, out, matrix, name, &crate::Progress::default())
}

/// [`export`], reporting each tensor written to `progress`.
pub fn export_with(
    checkpoint: &Checkpoint,
    out: &Path,
    matrix: DType,
    name: &str,
    progress: &crate::Progress,
) -> Result<usize> {
    let c = &checkpoint.config;
    let arch = arch_of(c);
    let sources: Vec<WeightSource> = checkpoint.weights()?;
    let pieces = pieces(c, &sources, matrix);
    let mut metadata = model_metadata(c, arch, matrix, name);
    metadata.extend(tokenizer_part(checkpoint, out, arch)?);
    let specs: Vec<TensorSpec> = pieces.iter().map(|p| p.spec.clone()).collect();
    write(out, &metadata, &specs, |i| {
        progress.report("converting tensors", i, pieces.len());
        let piece = &pieces[i];
        let raw = checkpoint.read(&sources[piece.source])?;
        // A row of the first dim: a matrix row, or one expert.
        let cols: usize = raw.shape.iter().skip(1).product();
        let row_bytes = |d: DType| d.bytes_for(cols);
        let target = dtype_of(piece.spec.ty);
        let bytes: Vec<u8> = if raw.dtype == target {
            raw.bytes
                [piece.rows.start * row_bytes(raw.dtype)..piece.rows.end * row_bytes(raw.dtype)]
                .to_vec()
        } else {
            let all = quant::to_f32(raw.dtype, &raw.bytes, raw.shape.iter().product())?;
            quant::from_f32(target, &all[piece.rows.start * cols..piece.rows.end * cols])?
        };
        checkpoint.release(&raw);
        Ok(Cow::Owned(bytes))
    })?;
    progress.report("converting tensors", pieces.len(), pieces.len());
    Ok(pieces.len())
}

/// The tensors to write for `sources`: each weight's GGUF names and rows,
/// matrices as `matrix` (F16 where rows are not whole blocks), the rest
/// F32; no `output.weight` when the head is tied to the embedding.
fn pieces(c: &ModelConfig, sources: &[WeightSource], matrix: DType) -> Vec<Piece> {
    // Tied when lm_head is read from the embedding (whatever the source's naming).
    let embed_source = sources
        .iter()
        .find(|s| s.name == "embed")
        .map(|s| &s.parts[0].0);
    let tied = c.tie_word_embeddings
        && sources
            .iter()
            .any(|s| s.name == "lm_head" && Some(&s.parts[0].0) == embed_source);
    let layout = Layout {
        arch: arch_of(c),
        qkv_rows: [
            c.heads * c.head_dim,
            c.kv_heads * c.head_dim,
            c.kv_heads * c.head_dim,
        ],
        gate_rows: [c.intermediate, c.moe.as_ref().map_or(0, |m| m.shared_ffn())],
        tied,
    };
    let mut pieces = Vec::new();
    for (i, source) in sources.iter().enumerate() {
        let shape: Vec<usize> = {
            let mut s = source.parts[0].1.clone();
            if source.stacked {
                s.insert(0, source.parts.len());
            } else {
                s[0] = source.parts.iter().map(|p| p.1[0]).sum();
            }
            s
        };
        let row = shape.last().copied().unwrap_or(0);
        let ty = if source.f32 || shape.len() < 2 {
            DType::F32
        } else if matrix.is_quantized() && !row.is_multiple_of(glmhal_hal::QUANT_BLOCK) {
            DType::F16
        } else {
            matrix
        };
        for (gguf_name, rows) in names(&source.name, &layout) {
            let rows = rows.start..rows.end.min(shape[0]);
            let mut s = shape.clone();
            s[0] = rows.len();
            pieces.push(Piece {
                spec: TensorSpec {
                    name: gguf_name,
                    ty: GgmlType::of(ty).unwrap_or(GgmlType::F32),
                    shape: s,
                },
                source: i,
                rows,
            });
        }
    }
    pieces
}

/// The llama.cpp architecture a model is written as.
fn arch_of(c: &ModelConfig) -> &'static str {
    match (c.moe.is_some(), c.order) {
        (true, _) => "glm4moe",
        (false, LayerOrder::Glm4) => "glm4",
        (false, LayerOrder::Glm) => "chatglm",
    }
}

/// The general and `arch.*` hyperparameter metadata of the model, and its
/// end-of-sequence ids.
fn model_metadata(c: &ModelConfig, arch: &str, matrix: DType, name: &str) -> Vec<(String, Meta)> {
    let key = |k: &str| format!("{arch}.{k}");
    let mut metadata = vec![
        ("general.architecture".to_string(), Meta::Str(arch.into())),
        ("general.name".to_string(), Meta::Str(name.into())),
        (
            "general.file_type".to_string(),
            Meta::U32(file_type(matrix)),
        ),
        (key("context_length"), Meta::U32(c.max_positions as u32)),
        (key("embedding_length"), Meta::U32(c.hidden as u32)),
        (key("block_count"), Meta::U32(c.layers as u32)),
        (key("feed_forward_length"), Meta::U32(c.intermediate as u32)),
        (key("attention.head_count"), Meta::U32(c.heads as u32)),
        (key("attention.head_count_kv"), Meta::U32(c.kv_heads as u32)),
        (key("attention.key_length"), Meta::U32(c.head_dim as u32)),
        (key("attention.value_length"), Meta::U32(c.head_dim as u32)),
        (
            key("attention.layer_norm_rms_epsilon"),
            Meta::F32(c.rms_eps as f32),
        ),
        (key("rope.dimension_count"), Meta::U32(c.rotary_dim as u32)),
        (key("rope.freq_base"), Meta::F32(c.rope_theta as f32)),
    ];
    if let Some(m) = &c.moe {
        let count = |k: &str, v: usize| (key(k), Meta::U32(v as u32));
        metadata.extend([
            count("expert_count", m.experts),
            count("expert_used_count", m.top_k),
            count("expert_shared_count", m.shared_experts),
            count("expert_feed_forward_length", m.expert_ffn),
            count("leading_dense_block_count", m.first_dense),
            count("expert_group_count", m.n_group),
            count("expert_group_used_count", m.topk_group),
            // The sigmoid, as llama.cpp numbers gating functions.
            count("expert_gating_func", 2),
            // The next-token-prediction layer is not written.
            count("nextn_predict_layers", 0),
            (key("expert_weights_scale"), Meta::F32(m.scaling as f32)),
            (key("expert_weights_norm"), Meta::Bool(m.normalize)),
        ]);
    }
    // Every end-of-sequence id (GLM-4 has three), as llama.cpp names them.
    for (key, id) in ["eos", "eot", "eom"].iter().zip(&c.eos_token_ids) {
        metadata.push((format!("tokenizer.ggml.{key}_token_id"), Meta::U32(*id)));
    }
    metadata
}

/// The tokenizer's metadata: from the checkpoint's `tokenizer.json`, or
/// carried over from a GGUF source, or llama.cpp's marker for none (with a
/// notice that `out` is written without one).
fn tokenizer_part(checkpoint: &Checkpoint, out: &Path, arch: &str) -> Result<Vec<(String, Meta)>> {
    let c = &checkpoint.config;
    let glm4 = c.order == LayerOrder::Glm4;
    let mut metadata = Vec::new();
    let tokenizer = checkpoint.dir.join("tokenizer.json");
    if checkpoint.gguf().is_none() && tokenizer.exists() {
        let pre = if glm4 { "glm4" } else { "chatglm-bpe" };
        metadata.extend(tokenizer_metadata(&tokenizer, c.vocab, pre)?);
    } else if let Some(g) = checkpoint.gguf() {
        // Carry the source file's tokenizer over unchanged.
        for (k, v) in &g.layout.metadata {
            let ids =
                k.ends_with("_token_id") && ["eos", "eot", "eom"].iter().any(|e| k.contains(e));
            if let Some(m) = (k.starts_with("tokenizer.") && !ids)
                .then(|| to_meta(v))
                .flatten()
            {
                metadata.push((k.clone(), m));
            }
        }
    } else {
        // llama.cpp's marker for a model without a vocabulary, with its size.
        metadata.push(("tokenizer.ggml.model".into(), Meta::Str("none".into())));
        metadata.push((format!("{arch}.vocab_size"), Meta::U32(c.vocab as u32)));
        eprintln!(
            "notice: {} has no tokenizer.json; {} is written without a tokenizer (token ids only)",
            checkpoint.dir.display(),
            out.display()
        );
    }
    Ok(metadata)
}

fn dtype_of(ty: GgmlType) -> DType {
    ty.dtype().unwrap_or(DType::F32)
}

/// A read metadata value in a writable form (strings, string arrays,
/// integer arrays and scalars; anything else is dropped).
fn to_meta(v: &crate::gguf::Value) -> Option<Meta> {
    use crate::gguf::Value;
    match v {
        Value::U64(n) => u32::try_from(*n).ok().map(Meta::U32),
        Value::I64(n) => i32::try_from(*n).ok().map(Meta::I32),
        Value::F64(x) => Some(Meta::F32(*x as f32)),
        Value::Bool(b) => Some(Meta::Bool(*b)),
        Value::Str(s) => Some(Meta::Str(s.clone())),
        Value::Array(items) => {
            if let Some(strings) = items
                .iter()
                .map(|i| i.as_str().map(String::from))
                .collect::<Option<Vec<_>>>()
            {
                Some(Meta::StrArray(strings))
            } else {
                items
                    .iter()
                    .map(|i| match i {
                        Value::U64(n) => i32::try_from(*n).ok(),
                        Value::I64(n) => i32::try_from(*n).ok(),
                        _ => None,
                    })
                    .collect::<Option<Vec<_>>>()
                    .map(Meta::I32Array)
            }
        }
    }
}
