//! `glmhal conformance`: the op suite on every chosen backend.

use clap::Args;
use glmhal_conformance::model_check::ModelResult;
use glmhal_conformance::{
    run as run_suite, BackendEntry, Case, Filter, Report, Run, Status, Target, DEFAULT_SEED,
};
use glmhal_hal::{Backend, DType, DeviceSelector, HalError, OpKind, Registry, Result};

/// Options of `glmhal conformance`.
#[derive(Args, Debug)]
pub struct ConformanceArgs {
    /// Backend to test, as NAME or NAME:INDEX (repeatable). Default: every available backend.
    #[arg(long = "backend", short = 'b', value_name = "NAME[:INDEX]")]
    backends: Vec<DeviceSelector>,
    /// Only this op (repeatable), e.g. mat_mul, attention, rope.
    #[arg(long = "op", value_name = "OP")]
    ops: Vec<OpKind>,
    /// Only cases with a tensor of this dtype (repeatable): f32 f16 bf16 i32 q8_0 q4_0.
    #[arg(long = "dtype", value_name = "DTYPE")]
    dtypes: Vec<DType>,
    /// Leave out cases with a tensor of this dtype (repeatable), e.g. bf16
    /// on a device without it; unlike --dtype, the model check still runs.
    #[arg(long = "without-dtype", value_name = "DTYPE")]
    without_dtypes: Vec<DType>,
    /// Leave out this op's cases (repeatable), e.g. the ops a backend has
    /// no kernel for yet, so --require-all holds everything else.
    #[arg(long = "without-op", value_name = "OP")]
    without_ops: Vec<OpKind>,
    /// Leave out the large shapes (4096² matmuls, 4096-key attention) for a quick run.
    #[arg(long)]
    skip_large: bool,
    /// Base seed of the inputs.
    #[arg(long, default_value_t = DEFAULT_SEED)]
    seed: u64,
    /// Run every case with this many seeds (the base seed and the ones
    /// after it) and print the tightness table: per op and dtype class, the
    /// worst |error| / bound.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=1000))]
    seeds: u64,
    /// Write the full JSON report here.
    #[arg(long, value_name = "FILE")]
    json: Option<std::path::PathBuf>,
    /// Write a Markdown summary here.
    #[arg(long, value_name = "FILE")]
    markdown: Option<std::path::PathBuf>,
    /// List the selected cases and exit.
    #[arg(long)]
    list: bool,
    /// Leave out the built-in model check (it runs unless --op narrows the run).
    #[arg(long)]
    skip_models: bool,
    /// Count unsupported cases and models as failures (for CI on a device
    /// that is expected to run everything).
    #[arg(long)]
    require_all: bool,
    /// Instead of the suite, plant each mutant (a fault real kernels have
    /// had; all when no NAME is given) in the backend and run its op's cases
    /// until one fails: prints which case killed each, exit 1 if one survives.
    #[arg(long, num_args = 0.., value_name = "NAME")]
    mutants: Option<Vec<String>>,
}

/// Outcome for the process exit code.
pub enum Verdict {
    /// Everything that ran passed.
    Passed,
    /// A case failed or errored.
    Failed,
    /// A backend the user named could not be tested.
    Infrastructure,
}

/// Runs the suite and prints the matrix.
pub fn run(args: ConformanceArgs, colour: bool) -> Result<Verdict> {
    let filter = Filter {
        ops: args.ops.clone(),
        dtypes: args.dtypes.clone(),
        without_dtypes: args.without_dtypes.clone(),
        without_ops: args.without_ops.clone(),
        skip_large: args.skip_large,
    };
    let cases = filter.select();
    super::outputs::check(
        [&args.json, &args.markdown]
            .into_iter()
            .flatten()
            .map(|p| p.as_path()),
        &[],
    )?;
    if args.list {
        for c in &cases {
            println!("{}", c.id);
        }
        eprintln!("{} case(s)", cases.len());
        return Ok(Verdict::Passed);
    }
    if cases.is_empty() {
        return Err(HalError::invalid(
            "conformance",
            "the filters select no case",
        ));
    }
    let registry = crate::backends::registry()?;
    let named = !args.backends.is_empty();
    let (entries, opened) = open_backends(&registry, &choose_backends(&registry, &args));
    let infrastructure = named && entries.iter().any(|e| !e.tested);
    let targets: Vec<Target<'_>> = opened
        .iter()
        .map(|(s, b)| Target {
            selector: s.clone(),
            backend: b.as_ref(),
        })
        .collect();
    let names: Vec<&str> = targets.iter().map(|t| t.selector.as_str()).collect();
    eprintln!(
        "running {} case(s) on {}",
        cases.len(),
        if names.is_empty() {
            "no backend".into()
        } else {
            names.join(", ")
        }
    );
    if let Some(names) = &args.mutants {
        return hunt_mutants(names, &cases, &targets, args.seed, &args);
    }
    let seeds: Vec<u64> = (0..args.seeds).map(|i| args.seed.wrapping_add(i)).collect();
    let run = run_cases(&cases, &targets, &seeds);
    let models = check_models(&args, &registry, &targets, &names)?;
    let unsupported = run
        .results
        .iter()
        .filter(|r| r.outcome.status == Status::Unsupported)
        .count()
        + models
            .iter()
            .filter(|m| m.status == Status::Unsupported)
            .count();
    let report = Report::new(&seeds, filter, entries, run).with_models(models);
    write_report(&args, &report, colour, seeds.len())?;
    if targets.is_empty() {
        return Err(HalError::invalid(
            "conformance",
            "no backend could be opened",
        ));
    }
    Ok(verdict(&args, &report, unsupported, infrastructure))
}

/// The backends named with --backend, or else every backend discovered here.
fn choose_backends(registry: &Registry, args: &ConformanceArgs) -> Vec<DeviceSelector> {
    if args.backends.is_empty() {
        registry
            .discover()
            .into_iter()
            .map(|s| DeviceSelector {
                backend: s.backend,
                index: None,
            })
            .collect()
    } else {
        args.backends.clone()
    }
}

/// Backends that opened, each with its selector.
type Opened = Vec<(String, Box<dyn Backend>)>;

/// Opens every chosen backend: an entry for each (tested or why not) and
/// the ones that opened.
fn open_backends(registry: &Registry, selectors: &[DeviceSelector]) -> (Vec<BackendEntry>, Opened) {
    let mut entries = Vec::new();
    let mut opened: Opened = Vec::new();
    for sel in selectors {
        match registry.open(sel) {
            Ok(b) => {
                entries.push(BackendEntry {
                    selector: sel.to_string(),
                    tested: true,
                    reason: None,
                    device: Some(b.info().clone()),
                });
                opened.push((sel.to_string(), b));
            }
            Err(e) => {
                let reason = match e {
                    HalError::Unavailable { reason, .. } => reason,
                    other => other.to_string(),
                };
                entries.push(BackendEntry {
                    selector: sel.to_string(),
                    tested: false,
                    reason: Some(reason),
                    device: None,
                });
            }
        }
    }
    (entries, opened)
}

/// Runs every case with every seed on every target, showing progress.
fn run_cases(cases: &[Case], targets: &[Target<'_>], seeds: &[u64]) -> Run {
    let bar = crate::progress::Bar::new("conformance", 0);
    let run = run_suite(cases, targets, seeds, &mut |p| {
        bar.set(p.done as u64, p.total as u64, &p.case.id);
    });
    bar.finish();
    run
}

/// The built-in model check on every target, unless skipped or the run is
/// narrowed to some ops or dtypes.
fn check_models(
    args: &ConformanceArgs,
    registry: &Registry,
    targets: &[Target<'_>],
    names: &[&str],
) -> Result<Vec<ModelResult>> {
    let mut models = Vec::new();
    if !args.skip_models && args.ops.is_empty() && args.dtypes.is_empty() && !targets.is_empty() {
        for model in glmhal_conformance::model_check::builtin_models() {
            eprintln!("model check: {} on {}", model.name, names.join(", "));
            let expected = glmhal_conformance::model_check::expect(&model)?;
            for t in targets {
                let sel: DeviceSelector = t.selector.parse()?;
                let open = || registry.open(&sel);
                models.push(glmhal_conformance::model_check::check(
                    &t.selector,
                    &open,
                    &expected,
                ));
            }
        }
    }
    Ok(models)
}

/// Prints the matrix (and the tightness table over several seeds) and
/// writes the JSON and Markdown reports asked for.
fn write_report(args: &ConformanceArgs, report: &Report, colour: bool, seeds: usize) -> Result<()> {
    print!("{}", report.console(colour));
    if seeds > 1 {
        println!(
            "\ntightness over {} seeds:\n{}",
            seeds,
            report.tightness_markdown()
        );
    }
    if let Some(path) = &args.json {
        super::outputs::write_json(path, report)?;
    }
    if let Some(path) = &args.markdown {
        super::outputs::write(path, report.markdown().as_bytes())?;
    }
    Ok(())
}

/// Failed when a case failed (or, with --require-all, was unsupported);
/// else infrastructure when a named backend could not be tested.
fn verdict(
    args: &ConformanceArgs,
    report: &Report,
    unsupported: usize,
    infrastructure: bool,
) -> Verdict {
    if args.require_all && unsupported > 0 {
        eprintln!("--require-all: {unsupported} case(s) or model(s) unsupported count as failures");
    }
    if report.failed() || (args.require_all && unsupported > 0) {
        Verdict::Failed
    } else if infrastructure {
        Verdict::Infrastructure
    } else {
        Verdict::Passed
    }
}

/// `--mutants`: every chosen mutant planted in every target, until a case kills it.
fn hunt_mutants(
    names: &[String],
    cases: &[glmhal_conformance::Case],
    targets: &[Target<'_>],
    seed: u64,
    args: &ConformanceArgs,
) -> Result<Verdict> {
    use glmhal_conformance::mutants;
    let chosen = mutants::select(names).map_err(|e| HalError::invalid("--mutants", e))?;
    if targets.is_empty() {
        return Err(HalError::invalid(
            "conformance",
            "no backend could be opened",
        ));
    }
    let mut survived = 0;
    let mut documents = Vec::new();
    for t in targets {
        eprintln!("{} mutant(s) planted in {}", chosen.len(), t.selector);
        let verdicts = mutants::hunt(
            t.backend,
            &chosen,
            cases,
            seed,
            &mut |v| match &v.killed_by {
                Some(case) => println!("killed   {:<44} {case}", v.mutant),
                None => println!(
                    "SURVIVED {:<44} ({} case(s) of {} ran)",
                    v.mutant, v.cases_run, v.op
                ),
            },
        );
        let alive = verdicts.iter().filter(|v| v.killed_by.is_none()).count();
        println!(
            "{}: {} of {} mutants killed",
            t.selector,
            verdicts.len() - alive,
            verdicts.len()
        );
        survived += alive;
        documents.push(serde_json::json!({
            "backend": t.selector,
            "verdicts": verdicts,
        }));
        if let Some(path) = &args.markdown {
            super::outputs::write(path, mutants::markdown(&verdicts).as_bytes())?;
        }
    }
    if let Some(path) = &args.json {
        let doc = serde_json::json!({
            "schema": "glmhal.mutants/1",
            "seed": seed,
            "runs": documents,
        });
        super::outputs::write_json(path, &doc)?;
    }
    Ok(if survived > 0 {
        Verdict::Failed
    } else {
        Verdict::Passed
    })
}
