//! `glmhal kernels compile`: the CUDA/HIP kernel tree compiled for a target
//! without its hardware, so a porting engineer can check a toolchain first.

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};
use glmhal_gpu::{compile_all, HipCompiler, Target, FILES};
use glmhal_hal::{HalError, Result};

/// `glmhal kernels` subcommands.
#[derive(Subcommand, Debug)]
pub enum KernelsCommand {
    /// Compile every kernel for one or more targets and report per kernel.
    Compile(CompileArgs),
    /// List the kernel source files.
    List,
}

/// HIP compiler choice on the command line.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum HipChoice {
    /// hiprtc if the HIP runtime loads, else clang's HIP mode.
    Auto,
    /// hiprtc only.
    Hiprtc,
    /// clang's HIP mode only.
    Clang,
}

/// Options of `glmhal kernels compile`.
#[derive(Args, Debug)]
pub struct CompileArgs {
    /// cuda:sm_80, cuda:sm_90, hip:gfx906, hip:gfx90a, ... (repeatable).
    #[arg(long = "target", required = true, value_name = "API:ARCH")]
    targets: Vec<String>,
    /// Write PTX/cubin or code objects here.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Which HIP compiler to use.
    #[arg(long, value_enum, default_value_t = HipChoice::Auto)]
    hip_compiler: HipChoice,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// Runs `glmhal kernels ...`; returns whether everything compiled.
pub fn run(cmd: KernelsCommand) -> Result<bool> {
    let args = match cmd {
        KernelsCommand::List => {
            for f in FILES {
                let first = f
                    .source
                    .lines()
                    .next()
                    .unwrap_or("")
                    .trim_start_matches("// ");
                println!("{:<16} {first}", f.name);
            }
            return Ok(true);
        }
        KernelsCommand::Compile(a) => a,
    };
    let hip = match args.hip_compiler {
        HipChoice::Auto => HipCompiler::Auto,
        HipChoice::Hiprtc => HipCompiler::Hiprtc,
        HipChoice::Clang => HipCompiler::Clang,
    };
    let options = crate::options::from_environment()?;
    let mut all_ok = true;
    let mut json = Vec::new();
    for t in &args.targets {
        let target: Target = t.parse()?;
        let out = args
            .out
            .as_ref()
            .map(|d| d.join(target.to_string().replace(':', "-")));
        let results = compile_all(&target, out.as_deref(), hip, &options.gpu)?;
        let kernels: usize = results.iter().map(|r| r.kernels.len()).sum();
        let failed = results.iter().filter(|r| !r.ok).count();
        all_ok &= failed == 0;
        if args.json {
            json.push(serde_json::json!({ "target": target.to_string(), "warp_size": target.warp_size(), "files": results }));
            continue;
        }
        println!(
            "{target} (warp {}): {} file(s), {kernels} kernel(s), {failed} failed, with {}",
            target.warp_size(),
            results.len(),
            results.first().map_or("-", |r| r.compiler.as_str())
        );
        for r in &results {
            let regs: Vec<u32> = r.kernels.iter().filter_map(|k| k.registers).collect();
            let spills = r
                .kernels
                .iter()
                .filter(|k| k.spill_bytes.unwrap_or(0) > 0)
                .count();
            let usage = match (regs.iter().min(), regs.iter().max()) {
                (Some(lo), Some(hi)) => format!("registers {lo}..{hi}, {spills} spilling"),
                _ => "registers not reported".into(),
            };
            println!(
                "  {:<16} {:<6} {:>4} kernels  {usage}  {:.1} s",
                r.file,
                if r.ok { "ok" } else { "FAILED" },
                r.kernels.len(),
                r.seconds
            );
            if !r.ok {
                for line in r.log.lines().take(40) {
                    println!("    | {line}");
                }
            }
        }
    }
    if args.json {
        let text = serde_json::to_string_pretty(&json)
            .map_err(|e| HalError::invalid("json", e.to_string()))?;
        println!("{text}");
    }
    Ok(all_ok)
}
