//! `glmhal generate`: text or token ids in, tokens out, with timings.

use std::io::Write;

use clap::Args;
use glmhal_hal::{HalError, Result};
use glmhal_model::chat::{chat_prompt, stop_ids, Role};
use glmhal_model::tokenizer::Tokenizer;
use glmhal_model::{generate, GenerateOptions, Generation, Model, Sampling};
use serde_json::json;

use super::model_args::{human, parse_tokens, peak_rss, MemoryReport, ModelArgs};

/// Options of `glmhal generate`.
#[derive(Args, Debug)]
pub struct GenerateArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Prompt text (needs the model's tokenizer).
    #[arg(long, conflicts_with = "tokens")]
    prompt: Option<String>,
    /// Prompt as token ids, e.g. 1,2,3.
    #[arg(long, value_name = "IDS")]
    tokens: Option<String>,
    /// Wrap the prompt as a user turn in the model's chat format.
    #[arg(long, requires = "prompt")]
    chat: bool,
    /// Most tokens to generate.
    #[arg(long, default_value_t = 64)]
    max_new_tokens: usize,
    /// Sampling temperature; 0 is greedy.
    #[arg(long, default_value_t = 0.0)]
    temperature: f32,
    /// Sample from the k most likely tokens (0: all).
    #[arg(long, default_value_t = 0)]
    top_k: usize,
    /// Sample from the smallest set reaching this probability.
    #[arg(long, default_value_t = 1.0)]
    top_p: f32,
    /// Penalize tokens already present (1: off).
    #[arg(long, default_value_t = 1.0)]
    repetition_penalty: f32,
    /// Seed of the sampler.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Ignore end-of-sequence tokens and always generate --max-new-tokens.
    #[arg(long)]
    ignore_eos: bool,
    /// Print token ids, text and timings as JSON.
    #[arg(long)]
    json: bool,
}

/// Runs generation.
pub fn run(args: GenerateArgs) -> Result<()> {
    let model = args.model.load()?;
    let tokenizer = match Tokenizer::from_dir(&args.model.model) {
        Ok(t) => Some(t),
        Err(e) if args.prompt.is_some() => return Err(e),
        Err(_) => None,
    };
    let prompt = prompt_tokens(&args, tokenizer.as_ref())?;
    let opts = options(&args, &model, tokenizer.as_ref(), prompt.len())?;
    let mut printed = String::new();
    let mut so_far = Vec::new();
    let stream = !args.json;
    let out = generate(&model, &prompt, &opts, &mut |tok| {
        so_far.push(tok);
        if !stream {
            return;
        }
        let text = tokenizer.as_ref().and_then(|t| t.decode(&so_far).ok());
        let mut stdout = std::io::stdout();
        match text {
            Some(text) if text.starts_with(&printed) && !text.ends_with('\u{FFFD}') => {
                let _ = write!(stdout, "{}", &text[printed.len()..]);
                printed = text;
            }
            Some(_) => {}
            None => {
                let _ = write!(stdout, "{tok} ");
            }
        }
        let _ = stdout.flush();
    })?;
    let memory = MemoryReport {
        peak_rss_bytes: peak_rss(),
        weights_bytes: model.weight_bytes(),
        kv_cache_bytes: out.kv_cache_bytes,
        activation_peak_bytes: out.activation_peak,
    };
    if args.json {
        print_json(&args, &model, tokenizer.as_ref(), &prompt, &out, memory);
    } else {
        println!();
        print_summary(&args, &model, &out, &memory);
    }
    Ok(())
}

/// The prompt as token ids: the text encoded (as a chat turn with --chat), or --tokens.
fn prompt_tokens(args: &GenerateArgs, tokenizer: Option<&Tokenizer>) -> Result<Vec<u32>> {
    Ok(match (&args.prompt, &args.tokens, tokenizer) {
        (Some(text), _, Some(t)) if args.chat => chat_prompt(t, &[(Role::User, text.clone())])?,
        (Some(text), _, Some(t)) => t.encode(text)?,
        (None, Some(ids), _) => parse_tokens(ids)?,
        _ => {
            return Err(HalError::invalid(
                "generate",
                "give --prompt TEXT or --tokens 1,2,3",
            ))
        }
    })
}

/// The generation options; prints a notice when the run would pass the
/// model's context and --beyond-context allows it.
fn options(
    args: &GenerateArgs,
    model: &Model,
    tokenizer: Option<&Tokenizer>,
    prompt_len: usize,
) -> Result<GenerateOptions> {
    let mut stop = if args.ignore_eos {
        vec![]
    } else {
        model.config.eos_token_ids.clone()
    };
    if let (Some(t), false) = (tokenizer, args.ignore_eos) {
        stop = stop_ids(t, &stop);
    }
    // A count that overflows is refused by `generate` itself.
    if let Some(needed) = prompt_len.checked_add(args.max_new_tokens) {
        if let Some(notice) = glmhal_model::generate::check_context(
            prompt_len,
            needed,
            model.config.max_positions,
            args.model.beyond_context,
        )? {
            eprintln!("notice: {notice}");
        }
    }
    Ok(GenerateOptions {
        beyond_context: args.model.beyond_context,
        max_new_tokens: args.max_new_tokens,
        sampling: Sampling {
            temperature: args.temperature,
            top_k: args.top_k,
            top_p: args.top_p,
            repetition_penalty: args.repetition_penalty,
            seed: args.seed,
        },
        stop,
        context: None,
        cache_dtype: args.model.kv_cache,
    })
}

/// Prints token ids, text, timings and memory as one JSON document.
fn print_json(
    args: &GenerateArgs,
    model: &Model,
    tokenizer: Option<&Tokenizer>,
    prompt: &[u32],
    out: &Generation,
    memory: MemoryReport,
) {
    let text = tokenizer.and_then(|t| t.decode(&out.tokens).ok());
    let doc = json!({
        "backend": args.model.backend.to_string(),
        "device": model.backend().info().name,
        "prompt_tokens": prompt,
        "tokens": out.tokens,
        "text": text,
        "stopped": out.stopped,
        "timings": {
            "load_seconds": model.load_seconds,
            "prefill_seconds": out.prefill_seconds,
            "decode_seconds": out.decode_seconds,
            // null where nothing was timed: no token asked for, or the
            // prefill gave the only one.
            "prefill_tokens_per_second": out.prefill_tps(),
            "decode_tokens_per_second": out.decode_tps(),
        },
        "memory": memory,
    });
    println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
}

/// Prints the one-line summary of load, prefill and decode speeds and memory to stderr.
fn print_summary(args: &GenerateArgs, model: &Model, out: &Generation, memory: &MemoryReport) {
    let decode = match (out.tokens.len(), out.decode_tps()) {
        (0, _) => "no decode step".to_string(),
        (_, Some(rate)) => format!("decode {} tokens at {rate:.1} tok/s", out.decode_steps()),
        _ => "no decode step (the prefill gave the only token)".to_string(),
    };
    let prefill = match out.prefill_tps() {
        Some(rate) => format!("prefill {} tokens at {rate:.1} tok/s", out.prompt_tokens),
        None => "no prefill (no token was asked for)".to_string(),
    };
    eprintln!(
        "[{}] load {:.2} s · {prefill} · {decode} · peak RSS {} · weights {} · KV cache {} · activations {}",
        args.model.backend,
        model.load_seconds,
        memory.peak_rss_bytes.map_or("n/a".into(), human),
        human(memory.weights_bytes as u64),
        human(memory.kv_cache_bytes as u64),
        human(memory.activation_peak_bytes as u64),
    );
}
