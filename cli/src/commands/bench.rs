//! `glmhal bench`: op sweeps at a GLM model's real shapes and whole-model
//! speed, on each chosen backend, with a versioned JSON document.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use glmhal_benches::measure::Budget;
use glmhal_benches::model::ModelPlan;
use glmhal_benches::schema::{BenchReport, Fingerprint, Peak, StepStructure};
use glmhal_benches::sweep::SweepPlan;
use glmhal_hal::{Backend, DType, DeviceSelector, HalError, Registry, Result};
use glmhal_model::synth::{synth_with, Preset};
use glmhal_model::{LoadOptions, Model, ModelConfig};

/// Options of `glmhal bench`.
#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    /// Model directory to measure (its config gives the sweep shapes).
    #[arg(long, value_name = "PATH", conflicts_with = "preset")]
    pub model: Option<PathBuf>,
    /// A preset (`glmhal synth --list`): its shapes for the sweeps, and a
    /// random checkpoint of it for the model measurements.
    #[arg(long, value_name = "NAME")]
    pub preset: Option<String>,
    /// Device to measure, NAME or NAME:INDEX (repeatable; default cpu).
    #[arg(long = "backend", short = 'b', value_name = "NAME[:INDEX]")]
    pub backends: Vec<DeviceSelector>,
    /// Weight dtype: f32, f16, bf16, q8_0 or q4_0 (weights are converted
    /// to it at load). Default: as the checkpoint stores them for --model,
    /// f16 for --preset.
    #[arg(long, value_name = "DTYPE")]
    pub weights: Option<DType>,
    /// Decode batch sizes, comma separated.
    #[arg(long, default_value = "1,4,16", value_delimiter = ',')]
    pub batch: Vec<usize>,
    /// Attention cache lengths of the sweep, comma separated (capped at the model's context).
    #[arg(long, default_value = "128,512,2048,8192,32768", value_delimiter = ',')]
    pub contexts: Vec<usize>,
    /// Prompt tokens of prefill measurements.
    #[arg(long, default_value_t = 128)]
    pub prompt: usize,
    /// Fewer samples per measurement (for CI and smoke runs).
    #[arg(long)]
    pub quick: bool,
    /// Leave out the op sweeps.
    #[arg(long)]
    pub skip_ops: bool,
    /// Leave out the whole-model measurements.
    #[arg(long)]
    pub skip_model: bool,
    /// Write the JSON document (schema glmhal.bench/1) here.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// CPU worker threads (default: every core, or GLMHAL_CPU_THREADS); on
    /// the CPU the read-bandwidth ceiling is measured with as many.
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
}

/// A model to measure: shapes, name, and where its checkpoint is.
struct Target {
    name: String,
    preset: Preset,
    dir: PathBuf,
    /// A scratch checkpoint this run wrote, removed at the end.
    scratch: bool,
    /// The weight dtype measured (`--weights`, or its default).
    weights: DType,
}

impl Drop for Target {
    fn drop(&mut self) {
        if self.scratch {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// The sweep shapes of a loaded model's config.
fn preset_of(c: &ModelConfig) -> Preset {
    Preset {
        name: "model",
        order: c.order,
        hidden: c.hidden,
        layers: c.layers,
        heads: c.heads,
        kv_heads: c.kv_heads,
        head_dim: c.head_dim,
        ffn: c.intermediate,
        vocab: c.vocab,
        theta: c.rope_theta,
        eps: c.rms_eps,
        context: c.max_positions,
        moe: c.moe.as_ref().map(|m| glmhal_model::synth::MoeShape {
            experts: m.experts,
            top_k: m.top_k,
            expert_ffn: m.expert_ffn,
            first_dense: m.first_dense,
            scaling: m.scaling,
            qk_norm: c.qk_norm,
        }),
    }
}

fn target(args: &BenchArgs) -> Result<Target> {
    match (&args.model, &args.preset) {
        (Some(dir), _) => {
            let checkpoint = glmhal_model::checkpoint::Checkpoint::open(dir)?;
            let weights = match args.weights {
                Some(dtype) => dtype,
                None => checkpoint.projection_dtype()?,
            };
            Ok(Target {
                name: dir
                    .file_name()
                    .map_or("model".into(), |n| n.to_string_lossy().into_owned()),
                preset: preset_of(&checkpoint.config),
                dir: dir.clone(),
                scratch: false,
                weights,
            })
        }
        (None, Some(name)) => {
            let preset = glmhal_benches::sweep::preset(name)?;
            let dir =
                std::env::temp_dir().join(format!("glmhal-bench-{name}-{}", std::process::id()));
            Ok(Target {
                name: name.clone(),
                preset,
                dir,
                scratch: true,
                weights: args.weights.unwrap_or(DType::F16),
            })
        }
        (None, None) => Err(HalError::invalid(
            "bench",
            "give --model PATH or --preset NAME",
        )),
    }
}

/// Progress on stderr when it is a terminal.
pub fn progress_line(label: &str) {
    if std::io::stderr().is_terminal() {
        eprint!("\r\x1b[2K  measuring {label:.70}");
    }
}

fn clear_progress() {
    if std::io::stderr().is_terminal() {
        eprint!("\r\x1b[2K");
    }
}

/// Writes the random checkpoint a preset's model measurement loads (f16
/// for quantized weights, which are quantized as they load).
fn write_checkpoint(t: &Target) -> Result<()> {
    let file_dtype = if t.weights.is_quantized() {
        DType::F16
    } else {
        t.weights
    };
    eprintln!(
        "writing a random {} checkpoint ({:.2} B parameters, {})",
        t.name,
        t.preset.parameters() as f64 / 1e9,
        file_dtype
    );
    synth_with(
        &t.preset,
        &t.dir,
        file_dtype,
        1,
        &crate::progress::for_model(),
    )
}

/// Runs the measurements and returns the document (also printed as tables).
pub fn measure(
    registry: &Registry,
    args: &BenchArgs,
    selectors: &[DeviceSelector],
) -> Result<(BenchReport, Vec<String>)> {
    let t = target(args)?;
    let budget = if args.quick {
        Budget::QUICK
    } else {
        Budget::THOROUGH
    };
    let mut report = BenchReport::new();
    let mut skipped = Vec::new();
    if !args.skip_model && t.scratch {
        write_checkpoint(&t)?;
    }
    for sel in selectors {
        let selector = sel.to_string();
        let backend = registry.open(sel)?;
        report
            .fingerprints
            .push(Fingerprint::of(&selector, backend.as_ref()));
        let info = backend.info().clone();
        let mut ops = Vec::new();
        if !args.skip_ops {
            let plan = SweepPlan {
                name: t.name.clone(),
                preset: t.preset.clone(),
                weights: t.weights,
                prefill_tokens: args.prompt,
                contexts: args.contexts.clone(),
                budget,
            };
            let (done, why) = plan.run(&selector, backend.as_ref(), &mut |l| progress_line(l))?;
            clear_progress();
            ops = done;
            skipped.extend(why);
        }
        let backend: Box<dyn Backend> = backend;
        if !args.skip_model {
            let started = Instant::now();
            let model = Model::load(
                &t.dir,
                backend,
                LoadOptions {
                    // Without --weights a checkpoint of the user's loads as stored.
                    weights: if t.scratch {
                        Some(t.weights)
                    } else {
                        args.weights
                    },
                    progress: crate::progress::for_model(),
                },
            )?;
            let load_s = started.elapsed().as_secs_f64();
            progress_line(&format!("{} prefill and decode", t.name));
            let plan = ModelPlan {
                prompt_tokens: args.prompt,
                batches: args.batch.clone(),
                budget,
            };
            let m =
                glmhal_benches::model::run(&selector, &t.name, &model, load_s, t.weights, &plan)?;
            clear_progress();
            report.models.push(m);
        }
        // The share of peak: vendor figures where the device has them, else the best seen here.
        let measured = |f: &dyn Fn(&glmhal_benches::schema::OpMeasurement) -> f64| {
            ops.iter().map(f).fold(0.0f64, f64::max)
        };
        let (flops, bytes, source) = match (info.peak_flops.f32, info.peak_bandwidth) {
            (Some(f), Some(b)) => (Some(f), Some(b), "device info".to_string()),
            // Decode on a CPU is bound by memory reads: its ceiling is measured here.
            _ if info.backend == "cpu" => {
                let threads = glmhal_cpu::threads(&registry.options().cpu);
                progress_line("read-bandwidth ceiling");
                let ceiling = glmhal_benches::bandwidth::read_ceiling(threads);
                clear_progress();
                (
                    Some(measured(&|m| m.gflops * 1e9)).filter(|v| *v > 0.0),
                    Some(ceiling),
                    format!("read bandwidth measured with {threads} thread(s); FLOP/s the best in this run"),
                )
            }
            _ => (
                Some(measured(&|m| m.gflops * 1e9)).filter(|v| *v > 0.0),
                Some(measured(&|m| m.gbps * 1e9)).filter(|v| *v > 0.0),
                "measured (best in this run)".to_string(),
            ),
        };
        // Products of f16, bf16 or quantized weights may run on matrix units.
        let tensor = info.peak_flops.f16.filter(|_| t.weights != DType::F32);
        for m in &mut ops {
            m.compute_share = flops.map(|f| m.gflops * 1e9 / f);
            m.bandwidth_share = bytes.map(|b| m.gbps * 1e9 / b);
            m.tensor_share = tensor
                .filter(|_| m.op == "mat_mul")
                .map(|f| m.gflops * 1e9 / f);
        }
        for m in report.models.iter_mut().filter(|m| m.backend == selector) {
            for d in &mut m.decode {
                d.ceiling_share = bytes.map(|b| d.effective_gbps * 1e9 / b);
            }
        }
        report.peaks.push(Peak {
            backend: selector.clone(),
            flops,
            tensor_flops: tensor,
            bytes_per_s: bytes,
            source,
        });
        report.ops.extend(ops);
    }
    Ok((report, skipped))
}

/// Prints the measurements as tables.
pub fn print(report: &BenchReport, skipped: &[String]) {
    for peak in &report.peaks {
        println!(
            "\n{}: peak {} GFLOP/s, {} GB/s ({})",
            peak.backend,
            peak.flops.map_or("?".into(), |f| format!("{:.1}", f / 1e9)),
            peak.bytes_per_s
                .map_or("?".into(), |b| format!("{:.1}", b / 1e9)),
            peak.source
        );
        if let Some(f) = peak.tensor_flops {
            println!("  f16 matrix peak {:.1} GFLOP/s (%tensor below)", f / 1e9);
        }
        let ops: Vec<_> = report
            .ops
            .iter()
            .filter(|m| m.backend == peak.backend)
            .collect();
        if !ops.is_empty() {
            println!(
                "  {:<12} {:<40} {:>10} {:>7} {:>9} {:>8} {:>7} {:>7} {:>8}",
                "op", "shape", "median ms", "spread", "GFLOP/s", "GB/s", "%flops", "%bw", "%tensor"
            );
        }
        for m in ops {
            let pct = |x: Option<f64>| x.map_or("-".into(), |v| format!("{:.0}%", v * 100.0));
            println!(
                "  {:<12} {:<40.40} {:>10.3} {:>6.1}% {:>9.2} {:>8.2} {:>7} {:>7} {:>8}",
                m.op,
                m.label,
                m.stats.median_s * 1e3,
                m.stats.spread * 100.0,
                m.gflops,
                m.gbps,
                pct(m.compute_share),
                pct(m.bandwidth_share),
                pct(m.tensor_share)
            );
        }
        for m in report.models.iter().filter(|m| m.backend == peak.backend) {
            // A routed model reads only its chosen experts per token.
            let active = if m.active_weight_bytes > 0 {
                format!(
                    ", {:.2} GB read per decode token",
                    m.active_weight_bytes as f64 / 1e9
                )
            } else {
                String::new()
            };
            println!(
                "  model {} ({} weights, {:.2} GB{active}): load {:.2} s, prefill {} tokens {:.1} tok/s (±{:.1}%)",
                m.model,
                m.weights,
                m.weight_bytes as f64 / 1e9,
                m.load_s,
                m.prompt_tokens,
                m.prefill_tps,
                m.prefill.spread * 100.0
            );
            for d in &m.decode {
                println!(
                    "    decode batch {:>2}: {:>8.2} tok/s, step {:.2} ms (±{:.1}%), weights read at {:.2} GB/s{}{}",
                    d.batch,
                    d.tps,
                    d.step.median_s * 1e3,
                    d.step.spread * 100.0,
                    d.effective_gbps,
                    d.ceiling_share
                        .map_or(String::new(), |s| format!(" ({:.0}% of the bandwidth peak)", s * 100.0)),
                    d.allocations_per_step
                        .map_or(String::new(), |a| format!(", {a:.1} heap allocations per step"))
                );
                if let Some(s) = &d.structure {
                    print_structure(s);
                }
            }
        }
    }
    for s in skipped {
        println!("unsupported: {s}");
    }
}

/// One decode step's structure, under its timing line.
fn print_structure(s: &StepStructure) {
    let c = &s.counters;
    println!(
        "      per step: {} launches + {} library calls ({:.1} per layer), {} host waits, \
         {} uploads ({} B), {} downloads ({} B); kernels read {:.1} MB, {:.2}× the {:.1} MB minimum",
        c.launches,
        c.library_calls,
        s.launches_per_layer,
        c.host_waits,
        c.uploads,
        c.upload_bytes,
        c.downloads,
        c.download_bytes,
        c.bytes_read as f64 / 1e6,
        s.read_ratio,
        s.minimum_bytes as f64 / 1e6
    );
}

/// Runs `glmhal bench`.
pub fn run(args: BenchArgs) -> Result<()> {
    super::outputs::check(args.json.as_deref(), &[])?;
    let mut options = crate::options::from_environment()?;
    if let Some(n) = args.threads {
        if n == 0 {
            return Err(HalError::invalid("--threads", "give at least one thread"));
        }
        options.cpu.threads = Some(n);
    }
    let registry = crate::backends::registry_with(options)?;
    let selectors = if args.backends.is_empty() {
        vec!["cpu".parse()?]
    } else {
        args.backends.clone()
    };
    let (report, skipped) = measure(&registry, &args, &selectors)?;
    print(&report, &skipped);
    if let Some(path) = &args.json {
        super::outputs::write_json(path, &report)?;
    }
    Ok(())
}
