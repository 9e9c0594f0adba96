//! What every model command shares: which model, on which device, in which dtype.

use std::path::PathBuf;

use clap::Args;
use glmhal_hal::{DType, DeviceSelector, Result};
use glmhal_model::{LoadOptions, Model};
use serde::Serialize;

/// Options to load a model.
#[derive(Args, Debug, Clone)]
pub struct ModelArgs {
    /// Model directory (config.json + safetensors [+ tokenizer]).
    #[arg(long, value_name = "PATH")]
    pub model: PathBuf,
    /// Device to run on, NAME or NAME:INDEX. Never replaced by another backend.
    #[arg(long, default_value = "cpu", value_name = "NAME[:INDEX]")]
    pub backend: DeviceSelector,
    /// Convert projection and embedding weights at load: f32, f16, bf16, q8_0 or q4_0.
    #[arg(long, value_name = "DTYPE", value_parser = weight_dtype)]
    pub weights: Option<DType>,
    /// KV cache dtype: f32 or f16.
    #[arg(long, default_value = "f32", value_name = "DTYPE")]
    pub kv_cache: DType,
    /// Run past the model's trained context (max_position_embeddings) when
    /// the prompt and the new tokens need more; refused otherwise.
    #[arg(long)]
    pub beyond_context: bool,
}

impl ModelArgs {
    /// Opens the backend the user named and loads the model onto it.
    pub fn load(&self) -> Result<Model> {
        let backend = crate::backends::registry()?.open(&self.backend)?;
        Model::load(
            &self.model,
            backend,
            LoadOptions {
                weights: self.weights,
                progress: crate::progress::for_model(),
            },
        )
    }
}

/// Memory figures every run reports.
#[derive(Debug, Serialize)]
pub struct MemoryReport {
    /// Peak resident set of this process, where the OS says.
    pub peak_rss_bytes: Option<u64>,
    /// Weights on the device.
    pub weights_bytes: usize,
    /// KV cache on the device.
    pub kv_cache_bytes: usize,
    /// Planned activation arena.
    pub activation_peak_bytes: usize,
}

/// Peak resident memory (Linux `VmHWM`).
pub fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace()
        .nth(1)?
        .parse::<u64>()
        .ok()
        .map(|k| k * 1024)
}

/// Bytes as a short human string.
pub fn human(bytes: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < units.len() {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.1} {}", units[u])
}

/// A dtype weights can be stored in (the error lists only those).
pub fn weight_dtype(s: &str) -> std::result::Result<DType, String> {
    let names: Vec<&str> = DType::WEIGHTS.iter().map(|d| d.name()).collect();
    s.parse::<DType>()
        .ok()
        .filter(|d| DType::WEIGHTS.contains(d))
        .ok_or_else(|| {
            format!(
                "`{s}` is not a weight dtype; use one of {}",
                names.join(", ")
            )
        })
}

/// Parses `1,2,3` into token ids.
pub fn parse_tokens(s: &str) -> Result<Vec<u32>> {
    s.split(',')
        .map(|t| {
            t.trim().parse::<u32>().map_err(|_| {
                glmhal_hal::HalError::invalid(
                    "--tokens",
                    format!("`{t}` is not a token id; write ids like 1,2,3"),
                )
            })
        })
        .collect()
}
