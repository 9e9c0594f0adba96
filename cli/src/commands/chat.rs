//! `glmhal chat`: an interactive, multi-turn conversation.

use std::io::{BufRead, Write};

use clap::Args;
use glmhal_hal::Result;
use glmhal_model::chat::{chat_prompt, stop_ids, Role};
use glmhal_model::tokenizer::Tokenizer;
use glmhal_model::{generate, GenerateOptions, Sampling};

use super::model_args::ModelArgs;

/// Options of `glmhal chat`.
#[derive(Args, Debug)]
pub struct ChatArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Most tokens per reply.
    #[arg(long, default_value_t = 256)]
    max_new_tokens: usize,
    /// Sampling temperature; 0 is greedy.
    #[arg(long, default_value_t = 0.0)]
    temperature: f32,
    /// Sampler seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// A system message to start with.
    #[arg(long)]
    system: Option<String>,
}

/// Reads user turns from stdin until EOF or `/exit`.
pub fn run(args: ChatArgs) -> Result<()> {
    let model = args.model.load()?;
    let tokenizer = Tokenizer::from_dir(&args.model.model)?;
    let stop = stop_ids(&tokenizer, &model.config.eos_token_ids);
    let mut history: Vec<(Role, String)> = args
        .system
        .iter()
        .map(|s| (Role::System, s.clone()))
        .collect();
    let stdin = std::io::stdin();
    eprintln!(
        "chatting with {} on {} (Ctrl-D or /exit to leave)",
        args.model.model.display(),
        args.model.backend
    );
    loop {
        eprint!("> ");
        let _ = std::io::stderr().flush();
        let mut line = String::new();
        if stdin
            .lock()
            .read_line(&mut line)
            .map_err(|e| glmhal_hal::HalError::io("reading stdin", e))?
            == 0
        {
            break;
        }
        let line = line.trim_end().to_string();
        if line == "/exit" {
            break;
        }
        history.push((Role::User, line));
        let prompt = chat_prompt(&tokenizer, &history)?;
        let opts = GenerateOptions {
            beyond_context: args.model.beyond_context,
            max_new_tokens: args.max_new_tokens,
            sampling: Sampling {
                temperature: args.temperature,
                seed: args.seed,
                ..Sampling::default()
            },
            stop: stop.clone(),
            context: None,
            cache_dtype: args.model.kv_cache,
        };
        let mut reply = Vec::new();
        let out = generate(&model, &prompt, &opts, &mut |t| {
            if !stop.contains(&t) {
                reply.push(t);
                if let Ok(text) = tokenizer.decode(&[t]) {
                    print!("{text}");
                    let _ = std::io::stdout().flush();
                }
            }
        })?;
        println!();
        eprintln!(
            "[load {:.2} s · prefill {} · decode {} · peak RSS {}]",
            model.load_seconds,
            out.prefill_tps()
                .map_or("-".into(), |r| format!("{r:.1} tok/s")),
            out.decode_tps()
                .map_or("-".into(), |r| format!("{r:.1} tok/s")),
            super::model_args::peak_rss().map_or("n/a".into(), super::model_args::human)
        );
        history.push((Role::Assistant, tokenizer.decode(&reply)?));
    }
    Ok(())
}
