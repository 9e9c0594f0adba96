//! `glmhal logits`: prefill logits as an f32 NumPy array.

use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use glmhal_hal::Result;

use super::model_args::{human, parse_tokens, peak_rss, ModelArgs};

/// Options of `glmhal logits`.
#[derive(Args, Debug)]
pub struct LogitsArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Token ids, e.g. 1,2,3.
    #[arg(long, value_name = "IDS")]
    tokens: String,
    /// Output `.npy` file: f32 `[tokens, vocab]`.
    #[arg(long, value_name = "FILE.npy")]
    out: PathBuf,
}

/// Writes the logits.
pub fn run(args: LogitsArgs) -> Result<()> {
    let tokens = parse_tokens(&args.tokens)?;
    super::outputs::check(
        [args.out.as_path()],
        &super::outputs::model_files(&args.model.model),
    )?;
    let model = args.model.load()?;
    if let Some(notice) = glmhal_model::generate::check_context(
        tokens.len(),
        tokens.len(),
        model.config.max_positions,
        args.model.beyond_context,
    )? {
        eprintln!("notice: {notice}");
    }
    let start = Instant::now();
    let logits = model.logits(&tokens, args.model.kv_cache)?;
    let secs = start.elapsed().as_secs_f64();
    let vocab = model.config.vocab;
    write_npy(&args.out, &logits, &[tokens.len(), vocab])?;
    eprintln!(
        "wrote {} [{}, {vocab}] · load {:.2} s · prefill {:.1} tok/s · peak RSS {}",
        args.out.display(),
        tokens.len(),
        model.load_seconds,
        tokens.len() as f64 / secs.max(1e-9),
        peak_rss().map_or("n/a".into(), human)
    );
    Ok(())
}

/// Writes a little-endian f32 NumPy array (format version 1.0).
pub fn write_npy(path: &std::path::Path, data: &[f32], shape: &[usize]) -> Result<()> {
    glmhal_model::npy::write_f32(path, data, shape)
}
