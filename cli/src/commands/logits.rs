//! `glmhal logits`: prefill logits as an f32 NumPy array.

use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use glmhal_hal::{HalError, Result};

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
    let model = args.model.load()?;
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
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape_text = if dims.len() == 1 {
        format!("({},)", dims[0])
    } else {
        format!("({})", dims.join(", "))
    };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape_text}, }}");
    // Magic (6) + version (2) + length (2) + header, padded with spaces and a newline to 64 bytes.
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = Vec::with_capacity(10 + header.len() + data.len() * 4);
    bytes.extend_from_slice(b"\x93NUMPY\x01\x00");
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    for v in data {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    std::fs::write(path, bytes).map_err(|e| HalError::io(format!("writing {}", path.display()), e))
}
