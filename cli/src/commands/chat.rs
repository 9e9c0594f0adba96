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

/// Reads user turns from stdin until EOF or `/exit`. A turn that cannot be
/// used (not UTF-8, longer than the context, or one the model cannot
/// answer) is reported and the session goes on; `/clear` empties the history.
pub fn run(args: ChatArgs) -> Result<()> {
    let model = args.model.load()?;
    let tokenizer = Tokenizer::from_dir(&args.model.model)?;
    let stop = stop_ids(&tokenizer, &model.config.eos_token_ids);
    let system: Vec<(Role, String)> = args
        .system
        .iter()
        .map(|s| (Role::System, s.clone()))
        .collect();
    let mut history = system.clone();
    // No line of more bytes than this can fit the context: every token
    // covers at most the longest token's bytes.
    let longest_line = model
        .config
        .max_positions
        .saturating_mul(tokenizer.longest_token_bytes().max(1));
    let stdin = std::io::stdin();
    eprintln!(
        "chatting with {} on {} (Ctrl-D or /exit to leave, /clear to start over)",
        args.model.model.display(),
        args.model.backend
    );
    loop {
        eprint!("> ");
        let _ = std::io::stderr().flush();
        let mut bytes = Vec::new();
        if stdin
            .lock()
            .read_until(b'\n', &mut bytes)
            .map_err(|e| glmhal_hal::HalError::io("reading stdin", e))?
            == 0
        {
            break;
        }
        let turn = match check_turn(&bytes, longest_line, args.model.beyond_context) {
            Ok(t) => t,
            Err(why) => {
                eprintln!("error: {why}; the session goes on (/clear starts over)");
                continue;
            }
        };
        match turn.as_str() {
            "/exit" => break,
            "/clear" => {
                history = system.clone();
                eprintln!("(history cleared)");
                continue;
            }
            _ => {}
        }
        history.push((Role::User, turn));
        match answer(&args, &model, &tokenizer, &stop, &history) {
            Ok(reply) => history.push((Role::Assistant, reply)),
            Err(e) => {
                // The turn is taken back, so the next one starts from the history before it.
                history.pop();
                eprintln!("error: {e}; the session goes on (/clear starts over)");
            }
        }
    }
    Ok(())
}

/// A line of input as a turn, or why it cannot be one.
fn check_turn(
    bytes: &[u8],
    longest_line: usize,
    beyond_context: bool,
) -> std::result::Result<String, String> {
    if !beyond_context && bytes.len() > longest_line {
        return Err(format!(
            "that line has {} bytes; no line over {longest_line} bytes fits the model's context",
            bytes.len()
        ));
    }
    let text = std::str::from_utf8(bytes).map_err(|e| format!("that line is not UTF-8 ({e})"))?;
    Ok(text.trim_end().to_string())
}

/// Generates the assistant's reply to `history`, streaming it to stdout.
fn answer(
    args: &ChatArgs,
    model: &glmhal_model::Model,
    tokenizer: &Tokenizer,
    stop: &[u32],
    history: &[(Role, String)],
) -> Result<String> {
    let prompt = chat_prompt(tokenizer, history)?;
    let opts = GenerateOptions {
        beyond_context: args.model.beyond_context,
        max_new_tokens: args.max_new_tokens,
        sampling: Sampling {
            temperature: args.temperature,
            seed: args.seed,
            ..Sampling::default()
        },
        stop: stop.to_vec(),
        context: None,
        cache_dtype: args.model.kv_cache,
    };
    let mut reply = Vec::new();
    let out = generate(model, &prompt, &opts, &mut |t| {
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
    tokenizer.decode(&reply)
}
