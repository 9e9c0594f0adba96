//! `glmhal ci`: conformance and a bench set on the chosen devices, compared
//! with a stored baseline of the same device fingerprint. Writes JUnit XML
//! and a Markdown summary; the exit code tells numeric failure, speed
//! regression and infrastructure error apart.

use std::path::PathBuf;

use clap::Args;
use glmhal_benches::compare::{compare, CaseRecord, CiReport, Comparison, ModelRecord};
use glmhal_conformance::{run as run_suite, CaseResult, Filter, Status, Target, DEFAULT_SEED};
use glmhal_hal::{DType, DeviceSelector, HalError, Registry, Result};

use super::bench::{measure, progress_line, BenchArgs};
use super::outputs::{check, write, write_json};

/// Options of `glmhal ci`.
#[derive(Args, Debug)]
pub struct CiArgs {
    /// The baseline (a previous `glmhal ci --json` document) to compare with.
    #[arg(long, value_name = "FILE")]
    baseline: PathBuf,
    /// Write this run as the new baseline (creating it if missing).
    #[arg(long)]
    update_baseline: bool,
    /// Device to run, NAME or NAME:INDEX (repeatable). Default: every available backend.
    #[arg(long = "backend", short = 'b', value_name = "NAME[:INDEX]")]
    backends: Vec<DeviceSelector>,
    /// Bench set: the preset whose shapes and model are measured.
    #[arg(long, default_value = "ci", value_name = "NAME")]
    bench_preset: String,
    /// Leave out the large conformance shapes and take fewer timing samples.
    #[arg(long)]
    quick: bool,
    /// Slowdown always allowed before a metric counts as a regression (0.25 = 25%);
    /// noisier metrics get more (3 × their spreads).
    #[arg(long, default_value_t = 0.25, value_name = "FRACTION")]
    speed_tolerance: f64,
    /// Write this run (schema glmhal.ci/2, with the comparison) here.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Write JUnit XML here.
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    /// Write a Markdown summary here.
    #[arg(long, value_name = "FILE")]
    markdown: Option<PathBuf>,
}

/// What the run found, for the exit code.
pub enum CiVerdict {
    /// Everything passed and nothing got slower.
    Passed,
    /// A conformance case or model fails, or its error grew.
    Numeric,
    /// A metric got slower than allowed.
    Slower,
}

fn status_name(s: Status) -> String {
    match s {
        Status::Pass => "pass",
        Status::Fail => "fail",
        Status::Unsupported => "unsupported",
        Status::Error => "error",
    }
    .into()
}

/// Runs `glmhal ci`.
pub fn run(args: CiArgs) -> Result<CiVerdict> {
    check_outputs(&args)?;
    let baseline = read_baseline(&args)?;
    let registry = crate::backends::registry()?;
    let selectors = choose_devices(&registry, &args)?;
    let mut now = CiReport::new();
    run_conformance(&registry, &selectors, args.quick, &mut now)?;
    run_benches(&registry, &args, &selectors, &mut now)?;

    let comparison = baseline
        .as_ref()
        .map(|b| compare(b, &now, args.speed_tolerance))
        .unwrap_or_default();
    write_reports(&args, &mut now, baseline.is_some(), &comparison)?;
    verdict(&args, &now, baseline.is_some(), &comparison)
}

/// Refuses output paths that cannot be written, or that would overwrite the baseline read.
fn check_outputs(args: &CiArgs) -> Result<()> {
    // The baseline is read, and written only when asked to update it.
    let reads = if args.update_baseline {
        vec![]
    } else {
        vec![args.baseline.clone()]
    };
    check(
        [&args.json, &args.junit, &args.markdown]
            .into_iter()
            .flatten()
            .map(|p| p.as_path()),
        &reads,
    )?;
    if args.update_baseline {
        check([args.baseline.as_path()], &[])?;
    }
    Ok(())
}

/// The stored baseline, validated; none when it is missing and about to be created.
fn read_baseline(args: &CiArgs) -> Result<Option<CiReport>> {
    let baseline = match std::fs::read_to_string(&args.baseline) {
        Ok(text) => Some(serde_json::from_str::<CiReport>(&text).map_err(|e| {
            HalError::invalid(
                format!("baseline {}", args.baseline.display()),
                format!("not a glmhal.ci/2 document: {e}"),
            )
        })?),
        Err(_) if args.update_baseline => None,
        Err(e) => {
            return Err(HalError::io(
                format!(
                    "reading the baseline {} (create one with --update-baseline)",
                    args.baseline.display()
                ),
                e,
            ))
        }
    };
    if let Some(b) = &baseline {
        b.validate()
            .map_err(|e| HalError::invalid(format!("baseline {}", args.baseline.display()), e))?;
    }
    Ok(baseline)
}

/// The devices named with --backend, or else every backend that opens.
fn choose_devices(registry: &Registry, args: &CiArgs) -> Result<Vec<DeviceSelector>> {
    if args.backends.is_empty() {
        registry
            .open_all()
            .into_iter()
            .filter(|(_, b)| b.is_ok())
            .map(|(name, _)| name.parse())
            .collect::<Result<_>>()
    } else {
        Ok(args.backends.clone())
    }
}

/// Conformance, every case and the built-in models, recorded in `now`.
fn run_conformance(
    registry: &Registry,
    selectors: &[DeviceSelector],
    quick: bool,
    now: &mut CiReport,
) -> Result<()> {
    let opened = selectors
        .iter()
        .map(|s| Ok((s.to_string(), registry.open(s)?)))
        .collect::<Result<Vec<_>>>()?;
    let targets: Vec<Target<'_>> = opened
        .iter()
        .map(|(s, b)| Target {
            selector: s.clone(),
            backend: b.as_ref(),
        })
        .collect();
    let cases = Filter {
        skip_large: quick,
        ..Filter::default()
    }
    .select();
    eprintln!(
        "conformance: {} case(s) on {}",
        cases.len(),
        selectors.len()
    );
    let results = run_suite(&cases, &targets, &[DEFAULT_SEED], &mut |p| {
        progress_line(&format!("conformance {}/{} {}", p.done, p.total, p.case.id))
    })
    .results;
    now.cases = results.iter().map(case_record).collect();
    // The devices stay open while the models run.
    let names: Vec<&str> = opened.iter().map(|(n, _)| n.as_str()).collect();
    check_models(registry, &names, selectors, &mut now.models)
}

/// One case's result as the CI document stores it.
fn case_record(r: &CaseResult) -> CaseRecord {
    CaseRecord {
        backend: r.backend.clone(),
        case: r.case.clone(),
        op: r.op.name().into(),
        dtypes: r
            .dtypes
            .iter()
            .map(|d: &DType| d.name().to_string())
            .collect(),
        status: status_name(r.outcome.status),
        nmse: r.outcome.errors.as_ref().map(|e| e.nmse),
        bound_ratio: r.outcome.errors.as_ref().and_then(|e| e.bound_ratio),
    }
}

/// Runs every built-in model on every device, appending a record each.
fn check_models(
    registry: &Registry,
    names: &[&str],
    selectors: &[DeviceSelector],
    models: &mut Vec<ModelRecord>,
) -> Result<()> {
    for model in glmhal_conformance::model_check::builtin_models() {
        progress_line(&format!("model check {}", model.name));
        let expected = glmhal_conformance::model_check::expect(&model)?;
        for (sel, s) in names.iter().copied().zip(selectors) {
            let open = || registry.open(s);
            let r = glmhal_conformance::model_check::check(sel, &open, &expected);
            models.push(ModelRecord {
                backend: sel.to_string(),
                model: model.name.into(),
                status: status_name(r.status),
                max_abs_error: r.max_abs_error.iter().copied().fold(0.0f32, f32::max) as f64,
            });
        }
    }
    Ok(())
}

/// Measures the bench set (the chosen preset, f16 weights) into `now`.
fn run_benches(
    registry: &Registry,
    args: &CiArgs,
    selectors: &[DeviceSelector],
    now: &mut CiReport,
) -> Result<()> {
    let bench_args = BenchArgs {
        model: None,
        preset: Some(args.bench_preset.clone()),
        backends: selectors.to_vec(),
        weights: Some(DType::F16),
        batch: vec![1, 4],
        contexts: vec![1024],
        prompt: 32,
        quick: args.quick,
        skip_ops: false,
        skip_model: false,
        json: None,
        threads: None,
    };
    let (bench, skipped) = measure(registry, &bench_args, selectors)?;
    for s in skipped {
        eprintln!("bench: unsupported: {s}");
    }
    now.fingerprints = bench.fingerprints.clone();
    now.bench = bench;
    Ok(())
}

/// Prints the summary and writes the baseline update (without the
/// comparison), the JSON, JUnit and Markdown files asked for.
fn write_reports(
    args: &CiArgs,
    now: &mut CiReport,
    has_baseline: bool,
    comparison: &Comparison,
) -> Result<()> {
    let summary = comparison.markdown(now);
    if args.update_baseline {
        write_json(&args.baseline, &*now)?;
    }
    now.comparison = has_baseline.then(|| comparison.clone());
    print!("{summary}");
    if let Some(path) = &args.json {
        write_json(path, &*now)?;
    }
    if let Some(path) = &args.junit {
        write(
            path,
            glmhal_benches::junit::junit(now, comparison).as_bytes(),
        )?;
    }
    if let Some(path) = &args.markdown {
        write(path, summary.as_bytes())?;
    }
    Ok(())
}

/// The exit verdict: numeric failures first, then slowdowns; a baseline
/// of other devices is an error, since nothing could be compared.
fn verdict(
    args: &CiArgs,
    now: &CiReport,
    has_baseline: bool,
    comparison: &Comparison,
) -> Result<CiVerdict> {
    if now.failing_cases().next().is_some()
        || now
            .models
            .iter()
            .any(|m| m.status == "fail" || m.status == "error")
        || !comparison.numeric.is_empty()
    {
        return Ok(CiVerdict::Numeric);
    }
    if !comparison.speed.is_empty() {
        return Ok(CiVerdict::Slower);
    }
    if has_baseline && !args.update_baseline && !comparison.not_compared.is_empty() {
        return Err(HalError::invalid(
            "ci",
            format!(
                "the baseline {} was made on other devices: {}",
                args.baseline.display(),
                comparison.not_compared.join("; ")
            ),
        ));
    }
    Ok(CiVerdict::Passed)
}
