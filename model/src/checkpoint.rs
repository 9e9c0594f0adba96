//! A model: a directory with `config.json` and one or more safetensors
//! files (either tensor naming), or one GGUF file; read into one canonical
//! set of weights.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use glmhal_hal::{quant, DType, HalError, Result};
use serde_json::Value;

use crate::config::{LayerOrder, ModelConfig, Naming};
use crate::gguf::GgufFile;
use crate::safetensors::{SafetensorsFile, TensorData};

/// A weight as the checkpoint stores it (bytes borrowed from the map, or
/// assembled for fused projections).
#[derive(Clone)]
pub struct RawWeight<'a> {
    /// Canonical name (`layers.3.qkv.weight`).
    pub name: String,
    /// Stored dtype.
    pub dtype: DType,
    /// `[rows, cols]` or `[len]`.
    pub shape: Vec<usize>,
    /// Packed little-endian bytes.
    pub bytes: std::borrow::Cow<'a, [u8]>,
    /// Names of the stored tensors it was read from.
    pub sources: Vec<String>,
    /// The mapped file and byte range it lies in, when it is stored as one
    /// piece (a backend may then use it in place).
    pub shared: Option<(glmhal_hal::SharedBytes, std::ops::Range<usize>)>,
}

pub use crate::weight_source::WeightSource;

pub(crate) fn one(stored: &str, name: String, shape: &[usize]) -> WeightSource {
    WeightSource {
        name,
        parts: vec![(stored.to_string(), shape.to_vec())],
        ..Default::default()
    }
}

pub(crate) fn fused(name: String, parts: &[(String, Vec<usize>)]) -> WeightSource {
    WeightSource {
        name,
        parts: parts.to_vec(),
        ..Default::default()
    }
}

/// Whether two shared byte handles are the same mapped file.
fn same_file(a: &glmhal_hal::SharedBytes, b: &glmhal_hal::SharedBytes) -> bool {
    std::ptr::addr_eq(std::sync::Arc::as_ptr(a), std::sync::Arc::as_ptr(b))
}

/// Compares the layers the config claims with the layers whose tensors the
/// checkpoint holds (`…layers.N.…`, `blk.N.…`), before anything is sized
/// by the claim: a config that claims more is refused, and so is a
/// checkpoint with whole layers the config would leave unused.
fn check_layers<'a>(
    path: &Path,
    config: &ModelConfig,
    names: impl Iterator<Item = &'a str>,
) -> Result<()> {
    let present = names
        .filter_map(layer_of)
        .max()
        .map_or(0, |last| last.saturating_add(1));
    let claimed = config.layers;
    // GLM-4.5's next-token-prediction layers are stored after the last one.
    let mtp = config.moe.as_ref().map_or(0, |m| m.mtp_layers);
    let present = if present > claimed && present <= claimed + mtp {
        claimed
    } else {
        present
    };
    let at = path.display().to_string();
    if claimed > present {
        return Err(HalError::invalid(
            at,
            format!(
                "the config gives {claimed} layers (num_hidden_layers / block_count) but the checkpoint holds tensors for {present}"
            ),
        ));
    }
    if present > claimed {
        return Err(HalError::invalid(
            at,
            format!(
                "the checkpoint holds tensors for {present} layers but the config gives {claimed}: layers {claimed}..{present} would be left unused"
            ),
        ));
    }
    Ok(())
}

/// The layer index in a tensor name (`model.layers.3.mlp…`, `blk.3.attn…`).
fn layer_of(name: &str) -> Option<usize> {
    let rest = ["layers.", "blk."]
        .iter()
        .find_map(|p| name.find(p).map(|i| &name[i + p.len()..]))?;
    let digits: &str = rest.split('.').next()?;
    digits.parse().ok()
}

/// Where the tensors are stored.
enum Store {
    /// safetensors files, and which file holds each tensor name.
    Safetensors {
        files: Vec<SafetensorsFile>,
        index: BTreeMap<String, usize>,
    },
    /// One GGUF file.
    Gguf(GgufFile),
}

/// An opened model.
pub struct Checkpoint {
    /// The directory (the file's directory for GGUF).
    pub dir: PathBuf,
    /// Its parsed config.
    pub config: ModelConfig,
    store: Store,
    /// K-quant types already announced as converted at load.
    announced: std::sync::Mutex<Vec<String>>,
}

impl Checkpoint {
    /// Opens a `.gguf` file, or `dir` (or a `config.json` path's directory):
    /// the config, then `model.safetensors.index.json` if present, else
    /// every `*.safetensors` file.
    pub fn open(path: &Path) -> Result<Self> {
        if path.is_file() && path.extension().is_some_and(|e| e == "gguf") {
            let file = GgufFile::open(path)?;
            let config = crate::gguf_model::config(&file)?;
            check_layers(
                path,
                &config,
                file.layout.tensors.iter().map(|t| t.name.as_str()),
            )?;
            return Ok(Checkpoint {
                dir: path.parent().unwrap_or(Path::new(".")).to_path_buf(),
                config,
                store: Store::Gguf(file),
                announced: Default::default(),
            });
        }
        let dir = if path.is_file() {
            path.parent().unwrap_or(Path::new(".")).to_path_buf()
        } else {
            path.to_path_buf()
        };
        if !dir.is_dir() {
            return Err(HalError::invalid(
                path.display().to_string(),
                "no such model directory",
            ));
        }
        let config = ModelConfig::from_file(&dir.join("config.json"))?;
        let index_path = dir.join("model.safetensors.index.json");
        let file_names: Vec<String> = if index_path.exists() {
            let text = std::fs::read_to_string(&index_path)
                .map_err(|e| HalError::io(format!("reading {}", index_path.display()), e))?;
            let v: Value = serde_json::from_str(&text).map_err(|e| {
                HalError::invalid(
                    index_path.display().to_string(),
                    format!("not valid JSON: {e}"),
                )
            })?;
            let map = v
                .get("weight_map")
                .and_then(Value::as_object)
                .ok_or_else(|| {
                    HalError::invalid(index_path.display().to_string(), "missing `weight_map`")
                })?;
            let mut names: Vec<String> = map
                .values()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect();
            names.sort();
            names.dedup();
            names
        } else {
            let mut names: Vec<String> = std::fs::read_dir(&dir)
                .map_err(|e| HalError::io(format!("listing {}", dir.display()), e))?
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".safetensors"))
                .collect();
            names.sort();
            names
        };
        if file_names.is_empty() {
            return Err(HalError::invalid(
                dir.display().to_string(),
                "no .safetensors files",
            ));
        }
        let mut files = Vec::new();
        let mut index = BTreeMap::new();
        for (i, name) in file_names.iter().enumerate() {
            if name.contains('/') || name.contains("..") {
                return Err(HalError::invalid(
                    index_path.display().to_string(),
                    format!("shard name `{name}` leaves the directory"),
                ));
            }
            let f = SafetensorsFile::open(&dir.join(name))?;
            for t in f.names() {
                if let Some(other) = index.insert(t.to_string(), i) {
                    return Err(HalError::invalid(
                        dir.display().to_string(),
                        format!(
                            "tensor `{t}` is in both {} and {name}; a checkpoint holds each tensor once",
                            file_names[other]
                        ),
                    ));
                }
            }
            files.push(f);
        }
        check_layers(&dir, &config, index.keys().map(String::as_str))?;
        Ok(Checkpoint {
            dir,
            config,
            store: Store::Safetensors { files, index },
            announced: Default::default(),
        })
    }

    /// The GGUF file, when the model is one.
    pub fn gguf(&self) -> Option<&GgufFile> {
        match &self.store {
            Store::Gguf(g) => Some(g),
            Store::Safetensors { .. } => None,
        }
    }

    fn raw(&self, name: &str) -> Result<(TensorData<'_>, glmhal_hal::SharedBytes)> {
        let missing = || {
            HalError::invalid(
                self.dir.display().to_string(),
                format!("missing tensor `{name}`"),
            )
        };
        match &self.store {
            Store::Safetensors { files, index } => {
                let i = index.get(name).ok_or_else(missing)?;
                Ok((files[*i].tensor(name)?, files[*i].shared()))
            }
            Store::Gguf(g) => Ok((g.tensor(name)?, g.shared())),
        }
    }

    /// Bytes `range` of `file` when it is one of this checkpoint's mapped files.
    fn mapped(
        &self,
        file: &glmhal_hal::SharedBytes,
        range: std::ops::Range<usize>,
    ) -> Option<&[u8]> {
        let same = |other: glmhal_hal::SharedBytes| same_file(&other, file);
        match &self.store {
            Store::Gguf(g) => same(g.shared()).then(|| g.mapped(range)).flatten(),
            Store::Safetensors { files, .. } => {
                files.iter().find(|f| same(f.shared()))?.mapped(range)
            }
        }
    }

    /// The fused weight as it lies in the file, when its parts are stored
    /// back to back in one mapped file with one dtype (q, k and v in a GGUF
    /// file, as llama.cpp's converter writes them): no copy, and a backend
    /// may use it in place like any single tensor.
    fn adjacent(
        &self,
        canonical: &str,
        raws: &[RawWeight<'_>],
        shape: &[usize],
        parts: &[(String, Vec<usize>)],
    ) -> Option<RawWeight<'_>> {
        let (file, first) = raws.first()?.shared.as_ref()?;
        let mut end = first.start;
        for r in raws {
            let (f, range) = r.shared.as_ref()?;
            if !same_file(f, file) || range.start != end || r.dtype != raws[0].dtype {
                return None;
            }
            end = range.end;
        }
        let range = first.start..end;
        let bytes = self.mapped(file, range.clone())?;
        Some(RawWeight {
            name: canonical.to_string(),
            dtype: raws[0].dtype,
            shape: shape.to_vec(),
            bytes: bytes.into(),
            sources: parts.iter().map(|p| p.0.clone()).collect(),
            shared: Some((file.clone(), range)),
        })
    }

    fn has(&self, name: &str) -> bool {
        match &self.store {
            Store::Safetensors { index, .. } => index.contains_key(name),
            Store::Gguf(g) => g.info(name).is_some(),
        }
    }

    /// A GGUF tensor stored as a K-quant, decoded and re-encoded as the
    /// nearest type glmhal has (announced once per type on stderr).
    fn converted(
        &self,
        g: &GgufFile,
        stored: &str,
        canonical: &str,
        shape: &[usize],
    ) -> Result<Option<RawWeight<'_>>> {
        let Some(info) = g.info(stored) else {
            return Ok(None);
        };
        let Some(mut target) = crate::kquants::target(info.ty) else {
            return Ok(None);
        };
        if shape.len() != 2 || !shape[1].is_multiple_of(glmhal_hal::QUANT_BLOCK) {
            target = DType::F32;
        }
        let n = shape.iter().product();
        let values = crate::kquants::dequantize(info.ty, g.bytes(info), n)
            .map_err(|e| HalError::invalid(format!("tensor `{stored}`"), e.to_string()))?;
        if let Ok(mut seen) = self.announced.lock() {
            let ty = info.ty.name();
            if !seen.contains(&ty) {
                eprintln!(
                    "notice: {}: tensors stored as {ty} (first: `{stored}`) are converted to {target} at load; glmhal has no {ty} kernels",
                    g.path().display()
                );
                seen.push(ty);
            }
        }
        Ok(Some(RawWeight {
            name: canonical.to_string(),
            dtype: target,
            shape: shape.to_vec(),
            bytes: quant::from_f32(target, &values)?.into(),
            sources: vec![stored.to_string()],
            shared: None,
        }))
    }

    /// Reads one stored tensor, checking its shape.
    fn take(&self, stored: &str, canonical: String, shape: &[usize]) -> Result<RawWeight<'_>> {
        if let Store::Gguf(g) = &self.store {
            if let Some(info) = g.info(stored) {
                if info.shape != shape {
                    return Err(HalError::invalid(
                        g.path().display().to_string(),
                        format!(
                            "tensor `{stored}` has shape {:?} but the metadata implies {shape:?}",
                            info.shape
                        ),
                    ));
                }
            }
            if let Some(w) = self.converted(g, stored, &canonical, shape)? {
                return Ok(w);
            }
        }
        let (t, shared) = self.raw(stored)?;
        if t.shape != shape {
            return Err(HalError::invalid(
                self.dir.display().to_string(),
                format!(
                    "tensor `{stored}` has shape {:?} but the config implies {shape:?}",
                    t.shape
                ),
            ));
        }
        Ok(RawWeight {
            name: canonical,
            dtype: t.dtype,
            shape: shape.to_vec(),
            bytes: t.bytes.into(),
            sources: vec![stored.to_string()],
            shared: Some((shared, t.range.clone())),
        })
    }

    /// Concatenates row blocks (q, k, v) into one fused tensor, or stacks
    /// equal parts (experts) along a new first dim.
    fn fuse(
        &self,
        canonical: String,
        parts: &[(String, Vec<usize>)],
        stacked: bool,
    ) -> Result<RawWeight<'_>> {
        let raws = parts
            .iter()
            .map(|(n, s)| self.take(n, canonical.clone(), s))
            .collect::<Result<Vec<_>>>()?;
        let dtype = raws[0].dtype;
        let rows: usize = raws.iter().map(|r| r.shape[0]).sum();
        let mut shape = raws[0].shape.clone();
        if stacked {
            shape.insert(0, raws.len());
        } else {
            shape[0] = rows;
        }
        if let Some(w) = self.adjacent(&canonical, &raws, &shape, parts) {
            return Ok(w);
        }
        let bytes: Vec<u8> = if raws.iter().all(|r| r.dtype == dtype) {
            let mut bytes = Vec::with_capacity(raws.iter().map(|r| r.bytes.len()).sum());
            for r in &raws {
                bytes.extend_from_slice(&r.bytes);
            }
            bytes
        } else {
            let mut vals = Vec::new();
            for r in &raws {
                vals.extend(quant::to_f32(r.dtype, &r.bytes, r.shape.iter().product())?);
            }
            return Ok(RawWeight {
                name: canonical,
                dtype: DType::F32,
                shape,
                bytes: quant::from_f32(DType::F32, &vals)?.into(),
                sources: parts.iter().map(|p| p.0.clone()).collect(),
                shared: None,
            });
        };
        Ok(RawWeight {
            name: canonical,
            dtype,
            shape,
            bytes: bytes.into(),
            sources: parts.iter().map(|p| p.0.clone()).collect(),
            shared: None,
        })
    }

    /// Reads one planned weight (fusing its parts when it has several).
    pub fn read(&self, source: &WeightSource) -> Result<RawWeight<'_>> {
        match source.parts.as_slice() {
            [(stored, shape)] if !source.stacked => self.take(stored, source.name.clone(), shape),
            parts => self.fuse(source.name.clone(), parts, source.stacked),
        }
    }

    /// Drops the pages of a weight's stored tensors once it is on the device.
    pub fn release(&self, weight: &RawWeight<'_>) {
        for name in &weight.sources {
            match &self.store {
                Store::Safetensors { files, index } => {
                    if let Some(i) = index.get(name) {
                        files[*i].release(name);
                    }
                }
                Store::Gguf(g) => g.release(name),
            }
        }
    }

    /// The dtype the projection weights load as when no conversion is asked
    /// for: the stored dtype of the first layer's attention output
    /// projection (K-quants: the dtype they are converted to at load).
    pub fn projection_dtype(&self) -> Result<DType> {
        let weights = self.weights()?;
        let source = weights
            .iter()
            .find(|w| w.name == "layers.0.o.weight")
            .ok_or_else(|| HalError::invalid("checkpoint", "no layers.0.o.weight to read"))?;
        let weight = self.read(source)?;
        let dtype = weight.dtype;
        self.release(&weight);
        Ok(dtype)
    }

    /// Whether `name` belongs to a next-token-prediction layer stored after
    /// the last layer (GLM-4.5's `num_nextn_predict_layers`).
    pub fn is_mtp_tensor(&self, name: &str) -> bool {
        let mtp = self.config.moe.as_ref().map_or(0, |m| m.mtp_layers);
        layer_of(name).is_some_and(|l| l >= self.config.layers && l < self.config.layers + mtp)
    }

    /// Tensors of the checkpoint that none of `sources` reads (sorted).
    pub fn unused(&self, sources: &[WeightSource]) -> Vec<String> {
        let used: std::collections::HashSet<&str> = sources
            .iter()
            .flat_map(|s| s.parts.iter().map(|(n, _)| n.as_str()))
            .collect();
        let all: Vec<&str> = match &self.store {
            Store::Safetensors { index, .. } => index.keys().map(String::as_str).collect(),
            Store::Gguf(g) => g.layout.tensors.iter().map(|t| t.name.as_str()).collect(),
        };
        let mut out: Vec<String> = all
            .into_iter()
            .filter(|n| !used.contains(n))
            .map(String::from)
            .collect();
        out.sort();
        out
    }

    /// Every weight the executor needs, in load order, under canonical names.
    pub fn weights(&self) -> Result<Vec<WeightSource>> {
        if let Store::Gguf(g) = &self.store {
            return Ok(crate::gguf_model::weights(g, &self.config));
        }
        let c = &self.config;
        let (h, v, f) = (c.hidden, c.vocab, c.intermediate);
        let (q_rows, kv_rows) = (c.heads * c.head_dim, c.kv_heads * c.head_dim);
        let mut out = Vec::new();
        let hf = c.naming == Naming::Hf;
        let (embed, final_norm, head) = if hf {
            (
                "model.embed_tokens.weight",
                "model.norm.weight",
                "lm_head.weight",
            )
        } else {
            (
                "transformer.embedding.word_embeddings.weight",
                "transformer.encoder.final_layernorm.weight",
                "transformer.output_layer.weight",
            )
        };
        out.push(one(embed, "embed".into(), &[v, h]));
        // Per layer: canonical name, HF name, ChatGLM name, shape. q/k/v are
        // separate in HF checkpoints and fused below; ChatGLM stores them fused.
        let mut table: Vec<(&str, &str, &str, Vec<usize>)> = vec![
            (
                "input_norm",
                "input_layernorm.weight",
                "input_layernorm.weight",
                vec![h],
            ),
            (
                "o.weight",
                "self_attn.o_proj.weight",
                "self_attention.dense.weight",
                vec![h, q_rows],
            ),
            (
                "mlp_norm",
                "post_attention_layernorm.weight",
                "post_attention_layernorm.weight",
                vec![h],
            ),
        ];
        // glm4_moe names its FFN apart (crate::moe_sources); GLM fuses gate and up.
        if c.moe.is_none() {
            table.push((
                "gate_up.weight",
                "mlp.gate_up_proj.weight",
                "mlp.dense_h_to_4h.weight",
                vec![2 * f, h],
            ));
            table.push((
                "down.weight",
                "mlp.down_proj.weight",
                "mlp.dense_4h_to_h.weight",
                vec![h, f],
            ));
        }
        if c.qk_norm {
            let hd = vec![c.head_dim];
            table.push(("q_norm", "self_attn.q_norm.weight", "", hd.clone()));
            table.push(("k_norm", "self_attn.k_norm.weight", "", hd));
        }
        if c.order == LayerOrder::Glm4 {
            table.push((
                "post_attn_norm",
                "post_self_attn_layernorm.weight",
                "",
                vec![h],
            ));
            table.push(("post_mlp_norm", "post_mlp_layernorm.weight", "", vec![h]));
        }
        let mut qkv = vec![("weight", vec![c.qkv_width(), h])];
        if c.qkv_bias {
            qkv.push(("bias", vec![c.qkv_width()]));
        }
        for i in 0..c.layers {
            let l = |s: &str| format!("layers.{i}.{s}");
            let stored = |hf_name: &str, chatglm_name: &str| {
                if hf {
                    format!("model.layers.{i}.{hf_name}")
                } else {
                    format!("transformer.encoder.layers.{i}.{chatglm_name}")
                }
            };
            for (kind, shape) in &qkv {
                if hf {
                    let parts: Vec<(String, Vec<usize>)> =
                        [("q_proj", q_rows), ("k_proj", kv_rows), ("v_proj", kv_rows)]
                            .iter()
                            .map(|(n, rows)| {
                                let mut s = shape.clone();
                                s[0] = *rows;
                                (stored(&format!("self_attn.{n}.{kind}"), ""), s)
                            })
                            .collect();
                    out.push(fused(l(&format!("qkv.{kind}")), &parts));
                } else {
                    let name = stored("", &format!("self_attention.query_key_value.{kind}"));
                    out.push(one(&name, l(&format!("qkv.{kind}")), shape));
                }
            }
            for (canonical, hf_name, chatglm_name, shape) in &table {
                out.push(one(&stored(hf_name, chatglm_name), l(canonical), shape));
            }
            if let Some(moe) = &c.moe {
                crate::moe_sources::hf_ffn(c, moe, i, &mut out);
            }
        }
        out.push(one(final_norm, "final_norm".into(), &[h]));
        if c.tie_word_embeddings && !self.has(head) {
            out.push(one(embed, "lm_head".into(), &[v, h]));
        } else {
            out.push(one(head, "lm_head".into(), &[v, h]));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_numbers_come_from_every_naming() {
        assert_eq!(layer_of("model.layers.12.mlp.down_proj.weight"), Some(12));
        assert_eq!(
            layer_of("transformer.encoder.layers.3.self_attention.dense.weight"),
            Some(3)
        );
        assert_eq!(layer_of("blk.40.attn_qkv.weight"), Some(40));
        assert_eq!(layer_of("model.embed_tokens.weight"), None);
        assert_eq!(layer_of("transformer.encoder.final_layernorm.weight"), None);
    }
}
