//! The transformers golden fixtures (`model/tests/fixtures/<name>/`, made by
//! `scripts/make_goldens.py` from `GlmForCausalLM`, `Glm4ForCausalLM` and
//! `Glm4MoeForCausalLM`): a
//! tiny random checkpoint with the prompt, transformers' f32 prefill logits
//! and its greedy continuation, read here for the CPU tests and for every
//! backend's conformance tests.

use std::path::{Path, PathBuf};

use glmhal_hal::{HalError, Result};

use crate::safetensors::SafetensorsFile;

/// The fixtures: both layer orders, GQA, MHA in ChatGLM naming, MQA with a
/// large theta, and glm4_moe twice: 8 experts in 2 groups (one kept) with
/// q/k norms, q/k/v bias, normalized and scaled weights, sharded, with a
/// next-token-prediction layer after the last; and 16 experts, top 4,
/// ungrouped, without q/k norms, bias or normalization.
pub const FIXTURES: [&str; 6] = [
    "glm-gqa2-tf4",
    "glm4-gqa4-tf5",
    "glm-mha-chatglm",
    "glm4-mqa-theta5e6",
    "glm4moe-grouped-qknorm",
    "glm4moe-flat-tf4",
];

/// Where the fixtures of this source tree are.
pub fn fixture_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// What transformers computed for one fixture.
#[derive(Clone, Debug)]
pub struct Golden {
    /// Prompt token ids.
    pub prompt: Vec<u32>,
    /// Greedy continuation.
    pub greedy: Vec<u32>,
    /// Prefill logits, `[prompt, vocab]` row-major.
    pub logits: Vec<f32>,
}

impl Golden {
    /// Reads `golden.json` and `golden.safetensors` of the fixture in `dir`.
    pub fn load(dir: &Path) -> Result<Golden> {
        let json_path = dir.join("golden.json");
        let text = std::fs::read_to_string(&json_path)
            .map_err(|e| HalError::io(format!("reading {}", json_path.display()), e))?;
        let json: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| HalError::invalid(json_path.display().to_string(), e.to_string()))?;
        let ids = |key: &str| -> Result<Vec<u32>> {
            json[key]
                .as_array()
                .ok_or_else(|| {
                    HalError::invalid(json_path.display().to_string(), format!("no `{key}` list"))
                })?
                .iter()
                .map(|v| {
                    v.as_u64()
                        .and_then(|x| u32::try_from(x).ok())
                        .ok_or_else(|| {
                            HalError::invalid(
                                json_path.display().to_string(),
                                format!("`{key}` holds {v}, not a token id"),
                            )
                        })
                })
                .collect()
        };
        let file = SafetensorsFile::open(&dir.join("golden.safetensors"))?;
        let logits = file
            .tensor("logits")?
            .bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        Ok(Golden {
            prompt: ids("prompt")?,
            greedy: ids("greedy")?,
            logits,
        })
    }

    /// Entries per logits row.
    pub fn vocab(&self) -> usize {
        self.logits.len() / self.prompt.len().max(1)
    }
}
