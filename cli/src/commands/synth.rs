//! `glmhal synth`: a random checkpoint with a real model's shapes.

use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use glmhal_hal::{DType, Result};
use glmhal_model::synth::{find_preset, synth_with, PRESETS};

use super::model_args::human;

/// Options of `glmhal synth`.
#[derive(Args, Debug)]
pub struct SynthArgs {
    /// Model shape: tiny, glm-edge-1.5b, glm-edge-4b, chatglm3-6b, glm-4-9b, glm-4-9b-0414,
    /// bench-1.3b, tiny-moe, glm-4.5-air, glm-4.5-air-4l, glm-4.5, glm-4.5-4l (`--list`).
    #[arg(long, required_unless_present = "list")]
    preset: Option<String>,
    /// Output directory (safetensors) or file (gguf).
    #[arg(long, value_name = "PATH", required_unless_present = "list")]
    out: Option<PathBuf>,
    /// Stored dtype: f32, f16 or bf16; with `--format gguf` also q8_0 or q4_0.
    #[arg(long, default_value = "f16")]
    dtype: DType,
    /// safetensors (a model directory) or gguf (one file, as llama.cpp reads it).
    #[arg(long, default_value = "safetensors", value_parser = ["safetensors", "gguf"])]
    format: String,
    /// Seed of the weights.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// List the presets and exit.
    #[arg(long)]
    list: bool,
}

/// Writes the checkpoint.
pub fn run(args: SynthArgs) -> Result<()> {
    if args.list {
        for p in PRESETS {
            let experts = p.moe.map_or(String::new(), |m| {
                format!(
                    ", {} experts of {} ({} per token, {:.2} B active)",
                    m.experts,
                    m.expert_ffn,
                    m.top_k,
                    p.active_parameters() as f64 / 1e9
                )
            });
            println!(
                "{:<15} {:>6.2} B params  {:?} hidden {} layers {} heads {}/{} ffn {} vocab {}{experts}",
                p.name,
                p.parameters() as f64 / 1e9,
                p.order,
                p.hidden,
                p.layers,
                p.heads,
                p.kv_heads,
                p.ffn,
                p.vocab
            );
        }
        return Ok(());
    }
    let (Some(name), Some(out)) = (&args.preset, &args.out) else {
        return Err(glmhal_hal::HalError::invalid(
            "synth",
            "give --preset NAME and --out DIR",
        ));
    };
    let preset = find_preset(name)?;
    let start = Instant::now();
    if args.format == "gguf" {
        // Random weights in f32 (f16 for large presets), then the GGUF in the asked type.
        super::outputs::check([out.as_path()], &[])?;
        // A directory of this process's own beside the output, removed after.
        let staging = out.with_file_name(format!(
            ".{}.glmhal-{}.staging",
            out.file_name()
                .map_or("model".into(), |n| n.to_string_lossy()),
            std::process::id()
        ));
        if staging.exists() {
            return Err(glmhal_hal::HalError::invalid(
                staging.display().to_string(),
                "exists; remove it or choose another output",
            ));
        }
        let source = if preset.parameters() < 1 << 28 {
            DType::F32
        } else {
            DType::F16
        };
        let result = synth_with(
            preset,
            &staging,
            source,
            args.seed,
            &crate::progress::for_model(),
        )
        .and_then(|_| super::convert::convert(&staging, out, args.dtype));
        let _ = std::fs::remove_dir_all(&staging);
        return result;
    }
    synth_with(
        preset,
        out,
        args.dtype,
        args.seed,
        &crate::progress::for_model(),
    )?;
    eprintln!(
        "wrote {} ({}, {:.2} B parameters, {} of weights) in {:.1} s",
        out.display(),
        preset.name,
        preset.parameters() as f64 / 1e9,
        human(args.dtype.bytes_for(preset.parameters()) as u64),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
