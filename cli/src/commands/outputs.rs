//! Files the commands write: checked before any work (never an input, a
//! directory that exists) and written whole or not at all.

use std::path::{Path, PathBuf};

use glmhal_hal::output::{check_output, write_atomic};
use glmhal_hal::{HalError, Result};

/// Checks every output a command was given against what it reads.
pub fn check<'a>(outputs: impl IntoIterator<Item = &'a Path>, inputs: &[PathBuf]) -> Result<()> {
    outputs
        .into_iter()
        .try_for_each(|p| check_output(p, inputs))
}

/// Writes `bytes` to `path` whole, and says so.
pub fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic(path, bytes)?;
    eprintln!("wrote {}", path.display());
    Ok(())
}

/// Writes `value` as pretty JSON to `path`.
pub fn write_json(path: &Path, value: &impl serde::Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| HalError::invalid("json", e.to_string()))?;
    write(path, text.as_bytes())
}

/// The files a model path stands for: the file itself, or every file in
/// the directory (config, shards, index, tokenizer).
pub fn model_files(model: &Path) -> Vec<PathBuf> {
    if model.is_dir() {
        std::fs::read_dir(model)
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| e.path())
                    .filter(|p| p.is_file())
                    .collect()
            })
            .unwrap_or_default()
    } else {
        vec![model.to_path_buf()]
    }
}
