//! `glmhal`: the front door. Lists devices, shows the op catalogue and proves
//! with the conformance suite that every backend computes what the reference does.

mod backends;
mod commands;
mod options;
mod progress;
mod style;

use std::process::ExitCode;

/// Counts heap allocations so `glmhal bench` can report them per decode step.
#[global_allocator]
static ALLOCATOR: glmhal_testkit::alloc_count::CountingAllocator =
    glmhal_testkit::alloc_count::CountingAllocator;

use clap::{Parser, Subcommand};

use commands::conformance::{ConformanceArgs, Verdict};
use style::ColorChoice;

/// Exit code when a conformance case fails or errors.
const EXIT_FAILED: u8 = 1;
/// Exit code for bad usage, unusable backends the user named, or I/O errors.
const EXIT_ERROR: u8 = 2;
/// Exit code of `glmhal ci` when a metric is slower than its baseline allows.
const EXIT_SLOWER: u8 = 3;

#[derive(Parser, Debug)]
#[command(
    name = "glmhal",
    version,
    about = "Run GLM-family models on many vendors' accelerators, and prove they agree.",
    long_about = "glmhal is a hardware abstraction layer for GLM-family models (ChatGLM3, GLM-4, \
GLM-4-0414, GLM-Edge). Every backend runs the same op catalogue, and the conformance \
suite compares each one with a plain f64 reference.\n\n\
Start with:\n  glmhal devices          which backends this machine can use, and why not\n  \
glmhal conformance      every op on every available backend against the reference\n  \
glmhal ops              the op catalogue\n  \
glmhal synth --preset tiny --out m && glmhal generate --model m --prompt hi\n                          a random model, then text from it",
    after_help = "Exit status: 0 success, 1 a conformance case failed (or, in `ci`, numbers drifted; \
in `diff`, a node diverged), \
2 usage or infrastructure error, 3 (`ci`) slower than the baseline."
)]
struct Cli {
    /// When to use colour.
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    color: ColorChoice,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// List every backend: available with its devices, or unavailable with the reason.
    Devices {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Run the conformance suite (every op × dtype × shape against the reference).
    Conformance(ConformanceArgs),
    /// Generate tokens from a prompt (text or token ids), with timings.
    Generate(commands::generate::GenerateArgs),
    /// Chat with a model, turn by turn, on stdin.
    Chat(commands::chat::ChatArgs),
    /// Run a model node by node on two backends and name the first node whose
    /// output is not what its own inputs give (or compare two dumps).
    Diff(commands::diff::DiffArgs),
    /// Run a model node by node and write every node's statistics, bound
    /// check and (with --tensors) output, for `diff --dump` on another machine.
    Dump(commands::diff::DumpArgs),
    /// Write the prefill logits of token ids as an f32 .npy array [tokens, vocab].
    Logits(commands::logits::LogitsArgs),
    /// Write a random checkpoint with the shapes of a real GLM model.
    Synth(commands::synth::SynthArgs),
    /// Write a checkpoint (safetensors directory or GGUF) as a GGUF file llama.cpp loads.
    Convert(commands::convert::ConvertArgs),
    /// Measure ops at a model's real shapes and the model's tokens/s on each backend.
    Bench(commands::bench::BenchArgs),
    /// Conformance and a bench set compared with a stored baseline (for CI on real hardware).
    Ci(commands::ci::CiArgs),
    /// The CUDA/HIP kernel tree: compile it for a target without the hardware.
    #[command(subcommand)]
    Kernels(commands::kernels::KernelsCommand),
    /// Write one self-contained HTML report from bench, ci and conformance JSON.
    Report(commands::report::ReportArgs),
    /// Show the op catalogue: inputs, shapes and dtypes of every op.
    Ops {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    stdout_errors_end_the_run();
    let cli = Cli::parse();
    let colour = cli.color.enabled();
    let result = match cli.command {
        Command::Devices { json } => {
            commands::devices::run(json, colour).map(|_| ExitCode::SUCCESS)
        }
        Command::Ops { json } => commands::ops::run(json).map(|_| ExitCode::SUCCESS),
        Command::Generate(args) => commands::generate::run(args).map(|_| ExitCode::SUCCESS),
        Command::Chat(args) => commands::chat::run(args).map(|_| ExitCode::SUCCESS),
        Command::Diff(args) => commands::diff::diff(args).map(|agree| {
            if agree {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(EXIT_FAILED)
            }
        }),
        Command::Dump(args) => commands::diff::dump(args).map(|_| ExitCode::SUCCESS),
        Command::Logits(args) => commands::logits::run(args).map(|_| ExitCode::SUCCESS),
        Command::Synth(args) => commands::synth::run(args).map(|_| ExitCode::SUCCESS),
        Command::Convert(args) => commands::convert::run(args).map(|_| ExitCode::SUCCESS),
        Command::Bench(args) => commands::bench::run(args).map(|_| ExitCode::SUCCESS),
        Command::Report(args) => commands::report::run(args).map(|_| ExitCode::SUCCESS),
        Command::Kernels(cmd) => commands::kernels::run(cmd).map(|ok| {
            if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(EXIT_FAILED)
            }
        }),
        Command::Ci(args) => commands::ci::run(args).map(|v| match v {
            commands::ci::CiVerdict::Passed => ExitCode::SUCCESS,
            commands::ci::CiVerdict::Numeric => ExitCode::from(EXIT_FAILED),
            commands::ci::CiVerdict::Slower => ExitCode::from(EXIT_SLOWER),
        }),
        Command::Conformance(args) => commands::conformance::run(args, colour).map(|v| match v {
            Verdict::Passed => ExitCode::SUCCESS,
            Verdict::Failed => ExitCode::from(EXIT_FAILED),
            Verdict::Infrastructure => {
                eprintln!("error: a backend named with --backend could not be tested (see above)");
                ExitCode::from(EXIT_ERROR)
            }
        }),
    };
    // Every backend the command opened is gone: vendor runtimes may finish.
    if let Ok(registry) = backends::registry() {
        registry.shutdown();
    }
    result.unwrap_or_else(|e| {
        eprintln!("error: {e}");
        ExitCode::from(EXIT_ERROR)
    })
}

/// Output that cannot be written ends the run as a Unix tool's would: a
/// reader that closed the pipe (`glmhal generate … | head -c 1`) ends it
/// quietly through SIGPIPE, and any other failure (a full disk) is a clear
/// error with exit status 2 instead of a panic from `println!`.
fn stdout_errors_end_the_run() {
    #[cfg(unix)]
    // SAFETY: restoring the default disposition of SIGPIPE (which the Rust
    // runtime set to ignore) before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        // The message `print!` panics with when stdout fails.
        if let Some(reason) = message.strip_prefix("failed printing to stdout: ") {
            eprintln!("error: writing to standard output: {reason}");
            std::process::exit(i32::from(EXIT_ERROR));
        }
        default(info);
    }));
}
