//! `glmhal report`: one self-contained HTML page from bench, ci and
//! conformance JSON documents.

use std::path::PathBuf;

use clap::Args;
use glmhal_hal::{HalError, Result};

/// Options of `glmhal report`.
#[derive(Args, Debug)]
pub struct ReportArgs {
    /// A JSON document from `glmhal bench`, `ci` or `conformance` (repeatable).
    #[arg(long = "in", value_name = "FILE", required = true)]
    inputs: Vec<PathBuf>,
    /// The HTML file to write.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
}

/// Runs `glmhal report`.
pub fn run(args: ReportArgs) -> Result<()> {
    super::outputs::check([args.out.as_path()], &args.inputs)?;
    let mut docs = Vec::new();
    for path in &args.inputs {
        let text = std::fs::read_to_string(path)
            .map_err(|e| HalError::io(format!("reading {}", path.display()), e))?;
        let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
            HalError::invalid(format!("{}", path.display()), format!("not JSON: {e}"))
        })?;
        let name = path.file_name().map_or(path.display().to_string(), |n| {
            n.to_string_lossy().into_owned()
        });
        docs.push((name, value));
    }
    let html = glmhal_benches::html::report(&docs).map_err(|e| HalError::invalid("report", e))?;
    super::outputs::write(&args.out, html.as_bytes())
}
