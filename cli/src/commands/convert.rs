//! `glmhal convert`: any checkpoint glmhal reads, written as GGUF.

use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use glmhal_hal::{DType, HalError, Result};
use glmhal_model::checkpoint::Checkpoint;
use glmhal_model::gguf_export::export_with;

use super::model_args::human;

/// Options of `glmhal convert`.
#[derive(Args, Debug)]
pub struct ConvertArgs {
    /// The model: a directory (config.json + safetensors) or a .gguf file.
    #[arg(long, value_name = "PATH")]
    model: PathBuf,
    /// The GGUF file to write.
    #[arg(long, value_name = "FILE.gguf")]
    out: PathBuf,
    /// Type of the matrices: f32, f16, bf16, q8_0 or q4_0 (norms and biases stay f32).
    #[arg(long, default_value = "f16", value_parser = super::model_args::weight_dtype)]
    dtype: DType,
}

/// Writes the GGUF file.
pub fn run(args: ConvertArgs) -> Result<()> {
    convert(&args.model, &args.out, args.dtype)
}

/// Converts `model` into the GGUF file `out`, refusing to overwrite the input.
pub fn convert(model: &std::path::Path, out: &std::path::Path, dtype: DType) -> Result<()> {
    if !DType::WEIGHTS.contains(&dtype) {
        return Err(HalError::invalid(
            "--dtype",
            format!("matrices cannot be stored as {dtype}; use f32, f16, bf16, q8_0 or q4_0"),
        ));
    }
    super::outputs::check([out], &super::outputs::model_files(model))?;
    let start = Instant::now();
    let checkpoint = Checkpoint::open(model)?;
    let name = model
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "glm".into());
    // Written beside the target and moved into place only when complete.
    let tensors = export_with(
        &checkpoint,
        out,
        dtype,
        &name,
        &crate::progress::for_model(),
    )?;
    let bytes = std::fs::metadata(out).map(|m| m.len()).unwrap_or(0);
    eprintln!(
        "wrote {} ({tensors} tensors, matrices {dtype}, {}) in {:.1} s",
        out.display(),
        human(bytes),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
