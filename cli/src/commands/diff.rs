//! `glmhal diff` and `glmhal dump`: find the first op where two backends part.

use std::path::{Path, PathBuf};

use clap::Args;
use glmhal_conformance::divergence::{compare_runs, record, Dump};
use glmhal_conformance::mutants::{parse_plant, Mutated};
use glmhal_hal::{Backend, DeviceSelector, HalError, Result};
use glmhal_model::tokenizer::Tokenizer;
use glmhal_model::{LoadOptions, Model};

use super::model_args::parse_tokens;

/// What to run: the model, the prompt and the decode steps.
#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// Model directory or GGUF file.
    #[arg(long, value_name = "PATH")]
    model: Option<PathBuf>,
    /// Prompt token ids, e.g. 1,2,3.
    #[arg(long, value_name = "IDS", conflicts_with = "prompt")]
    tokens: Option<String>,
    /// Prompt text (needs the model's tokenizer).
    #[arg(long, value_name = "TEXT")]
    prompt: Option<String>,
    /// Decode steps after the prompt (each feeds the first backend's greedy token).
    #[arg(long, default_value_t = 2)]
    steps: usize,
    /// Convert projection and embedding weights at load: f32, f16, bf16, q8_0 or q4_0.
    #[arg(long, value_name = "DTYPE", value_parser = super::model_args::weight_dtype)]
    weights: Option<glmhal_hal::DType>,
}

impl RunArgs {
    fn model_path(&self) -> Result<&Path> {
        self.model
            .as_deref()
            .ok_or_else(|| HalError::invalid("diff", "give --model PATH (or --dump DIR twice)"))
    }

    fn prompt(&self) -> Result<Vec<u32>> {
        match (&self.tokens, &self.prompt) {
            (Some(ids), _) => parse_tokens(ids),
            (None, Some(text)) => Tokenizer::from_dir(self.model_path()?)?.encode(text),
            (None, None) => Err(HalError::invalid(
                "diff",
                "give --tokens 1,2,3 or --prompt TEXT",
            )),
        }
    }

    /// Loads the model on `selector`, with a mutant planted when `plant` names one.
    fn load(&self, selector: &DeviceSelector, plant: Option<&str>) -> Result<Model> {
        let mut backend: Box<dyn Backend> = crate::backends::registry()?.open(selector)?;
        if let Some(text) = plant {
            let (mutant, call) = parse_plant(text).map_err(|e| HalError::invalid("--plant", e))?;
            eprintln!(
                "planting mutant `{}` ({}) in {selector}{}",
                mutant.name,
                mutant.bug,
                call.map_or(String::new(), |c| format!(
                    ", call {c} of {} only",
                    mutant.op
                ))
            );
            let mutated = Mutated::owning(backend, mutant);
            backend = Box::new(match call {
                Some(c) => mutated.only_in_call(c),
                None => mutated,
            });
        }
        Model::load(
            self.model_path()?,
            backend,
            LoadOptions {
                weights: self.weights,
                progress: crate::progress::for_model(),
            },
        )
    }
}

/// Options of `glmhal diff`.
#[derive(Args, Debug)]
pub struct DiffArgs {
    #[command(flatten)]
    run: RunArgs,
    /// The two backends to compare, NAME or NAME:INDEX (give it twice).
    #[arg(long = "backend", value_name = "NAME[:INDEX]")]
    backends: Vec<DeviceSelector>,
    /// Compare two dumps (`glmhal dump`) instead of running (give it twice).
    #[arg(long = "dump", value_name = "DIR", conflicts_with = "backends")]
    dumps: Vec<PathBuf>,
    /// Plant a catalogue mutant in the second backend, NAME or NAME@CALL
    /// (only that call of its op), to see what a divergence looks like.
    #[arg(long, value_name = "MUTANT[@CALL]")]
    plant: Option<String>,
    /// Write the comparison as JSON here.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
}

/// Options of `glmhal dump`.
#[derive(Args, Debug)]
pub struct DumpArgs {
    #[command(flatten)]
    run: RunArgs,
    /// The backend, NAME or NAME:INDEX.
    #[arg(long, default_value = "cpu", value_name = "NAME[:INDEX]")]
    backend: DeviceSelector,
    /// A new (or empty) directory for `index.json` and the tensors.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Also write every node's output as .npy (needed for cosine and
    /// element errors in `diff --dump`).
    #[arg(long)]
    tensors: bool,
    /// Plant a catalogue mutant, NAME or NAME@CALL.
    #[arg(long, value_name = "MUTANT[@CALL]")]
    plant: Option<String>,
}

/// Runs `glmhal diff`: true when no node diverges.
pub fn diff(args: DiffArgs) -> Result<bool> {
    let dump_indexes: Vec<PathBuf> = args.dumps.iter().map(|d| d.join("index.json")).collect();
    super::outputs::check(args.json.as_deref(), &dump_indexes)?;
    let d = match (args.dumps.as_slice(), args.backends.as_slice()) {
        ([a, b], []) => compare_runs(&Dump::read(a)?, &Dump::read(b)?)?,
        ([], [a, b]) => {
            let prompt = args.run.prompt()?;
            let name = args.run.model_path()?.display().to_string();
            let first = args.run.load(a, None)?;
            eprintln!("running {} node by node on {a}", name);
            let run_a = record(
                &first,
                &a.to_string(),
                &name,
                &prompt,
                args.run.steps,
                None,
                true,
            )?;
            drop(first);
            let second = args.run.load(b, args.plant.as_deref())?;
            eprintln!("running {} node by node on {b}", name);
            let label = match &args.plant {
                Some(p) => format!("{b}+{p}"),
                None => b.to_string(),
            };
            let run_b = record(
                &second,
                &label,
                &name,
                &prompt,
                args.run.steps,
                Some(&run_a.decoded),
                true,
            )?;
            compare_runs(&run_a, &run_b)?
        }
        _ => return Err(HalError::invalid(
            "diff",
            "give --backend A --backend B (with --model and a prompt) or --dump DIR_A --dump DIR_B",
        )),
    };
    print!("{}", d.render());
    if let Some(path) = &args.json {
        super::outputs::write_json(path, &d)?;
    }
    Ok(d.first.is_none())
}

/// Runs `glmhal dump`.
pub fn dump(args: DumpArgs) -> Result<()> {
    let prompt = args.run.prompt()?;
    let name = args.run.model_path()?.display().to_string();
    let model = args.run.load(&args.backend, args.plant.as_deref())?;
    let label = match &args.plant {
        Some(p) => format!("{}+{p}", args.backend),
        None => args.backend.to_string(),
    };
    let mut d = record(
        &model,
        &label,
        &name,
        &prompt,
        args.run.steps,
        None,
        args.tensors,
    )?;
    d.write(&args.out, args.tensors)?;
    let failing = d
        .nodes
        .iter()
        .filter(|n| n.local_ratio.is_none_or(|r| r.is_nan() || r > 1.0))
        .count();
    eprintln!(
        "wrote {} nodes ({} step(s)) to {}{}; {failing} node(s) outside their bound",
        d.nodes.len(),
        args.run.steps + 1,
        args.out.display(),
        if args.tensors { " with tensors" } else { "" }
    );
    Ok(())
}
