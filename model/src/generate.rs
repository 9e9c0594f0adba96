//! The generation loop: prefill, then decode one token at a time with the KV
//! cache, streaming tokens as they come.

use std::time::Instant;

use glmhal_hal::{DType, HalError, Result};
use serde::Serialize;

use crate::executor::{Model, StepOutput, Workspace};
use crate::graph::{SeqStep, Want};
use crate::sampler::{Sampler, Sampling};

/// What to generate.
#[derive(Clone, Debug)]
pub struct GenerateOptions {
    /// Most tokens to add.
    pub max_new_tokens: usize,
    /// Sampling settings.
    pub sampling: Sampling,
    /// Stop after any of these (the model's EOS ids by default).
    pub stop: Vec<u32>,
    /// Context capacity of the cache (prompt + new tokens when `None`).
    pub context: Option<usize>,
    /// KV cache dtype.
    pub cache_dtype: DType,
    /// Run past the model's trained context (`max_position_embeddings`)
    /// when the prompt and the new tokens need more; refused otherwise.
    pub beyond_context: bool,
}

/// The outcome of a generation.
#[derive(Clone, Debug, Serialize)]
pub struct Generation {
    /// New tokens (the stop token included when one was produced).
    pub tokens: Vec<u32>,
    /// Whether a stop token ended it.
    pub stopped: bool,
    /// Prompt tokens.
    pub prompt_tokens: usize,
    /// Seconds of prefill (to the first token).
    pub prefill_seconds: f64,
    /// Seconds of decoding after the first token.
    pub decode_seconds: f64,
    /// Planned activation peak in bytes.
    pub activation_peak: usize,
    /// KV cache bytes.
    pub kv_cache_bytes: usize,
}

impl Generation {
    /// Prompt tokens per second (`None` when no prefill ran: no token was asked for).
    pub fn prefill_tps(&self) -> Option<f64> {
        (!self.tokens.is_empty() && self.prefill_seconds > 0.0)
            .then(|| self.prompt_tokens as f64 / self.prefill_seconds)
    }

    /// Decode steps: every generated token after the first, which the prefill gives.
    pub fn decode_steps(&self) -> usize {
        self.tokens.len().saturating_sub(1)
    }

    /// Generated tokens per second after the first (`None` when nothing
    /// was decoded after the prefill).
    pub fn decode_tps(&self) -> Option<f64> {
        (self.decode_steps() > 0 && self.decode_seconds > 0.0)
            .then(|| self.decode_steps() as f64 / self.decode_seconds)
    }
}

/// Generates from `prompt`, calling `on_token` with each token as it comes.
pub fn generate(
    model: &Model,
    prompt: &[u32],
    opts: &GenerateOptions,
    on_token: &mut dyn FnMut(u32),
) -> Result<Generation> {
    opts.sampling.validate()?;
    if prompt.is_empty() {
        return Err(HalError::invalid("generate", "the prompt is empty"));
    }
    let trained = model.config.max_positions;
    let needed = prompt
        .len()
        .checked_add(opts.max_new_tokens)
        .ok_or_else(|| {
            HalError::invalid(
                "--max-new-tokens",
                format!("{} new tokens cannot be counted", opts.max_new_tokens),
            )
        })?;
    check_context(prompt.len(), needed, trained, opts.beyond_context)?;
    let capacity = opts.context.unwrap_or(needed);
    if needed > capacity {
        return Err(HalError::invalid(
            "generate",
            format!(
                "prompt of {} tokens plus {} new ones does not fit the context of {capacity} cache positions",
                prompt.len(),
                opts.max_new_tokens,
            ),
        ));
    }
    let cache = model.new_cache(capacity, 1, opts.cache_dtype)?;
    let mut ws = Workspace::default();
    let mut sampler = Sampler::new(opts.sampling);
    let want = if opts.sampling.is_greedy() {
        Want::Greedy
    } else {
        Want::LastLogits
    };
    // Sized up front, and every buffer of the loop reused: a decode step
    // allocates nothing.
    let mut history: Vec<u32> = Vec::with_capacity(needed);
    history.extend_from_slice(prompt);
    let mut out = Vec::with_capacity(opts.max_new_tokens);
    let mut result = StepOutput::Tokens(Vec::new());
    let mut stopped = false;
    let start = Instant::now();
    let mut first_at = 0.0;
    let mut seq = SeqStep {
        slot: 0,
        start: 0,
        len: prompt.len(),
    };
    let mut feed: Vec<u32> = prompt.to_vec();
    while out.len() < opts.max_new_tokens {
        model.step_into(&cache, &mut ws, &[seq], &feed, want, &mut result)?;
        let next = match &result {
            StepOutput::Tokens(t) => t[0],
            StepOutput::Logits(l) => sampler.sample(l, &history),
        };
        if out.is_empty() {
            first_at = start.elapsed().as_secs_f64();
        }
        out.push(next);
        history.push(next);
        on_token(next);
        if opts.stop.contains(&next) {
            stopped = true;
            break;
        }
        seq = SeqStep {
            slot: 0,
            start: seq.start + seq.len,
            len: 1,
        };
        feed.clear();
        feed.push(next);
    }
    let total = start.elapsed().as_secs_f64();
    Ok(Generation {
        tokens: out,
        stopped,
        prompt_tokens: prompt.len(),
        prefill_seconds: first_at,
        decode_seconds: total - first_at,
        activation_peak: ws.planned_peak,
        kv_cache_bytes: cache.bytes(),
    })
}

/// Refuses `needed` positions (a prompt of `prompt` tokens and what follows
/// it) beyond the model's trained context unless `beyond` allows it; when
/// it does, the notice to show.
pub fn check_context(
    prompt: usize,
    needed: usize,
    trained: usize,
    beyond: bool,
) -> Result<Option<String>> {
    if needed <= trained {
        return Ok(None);
    }
    if !beyond {
        return Err(HalError::invalid(
            "context",
            format!(
                "{prompt} prompt tokens and what follows need {needed} positions, past the model's trained context of {trained} (max_position_embeddings); pass --beyond-context to run past it"
            ),
        ));
    }
    Ok(Some(format!(
        "running {needed} positions, past the model's trained context of {trained} (--beyond-context): results there are not what the model was trained for"
    )))
}

/// Greedy generation that recomputes the whole sequence every step, with no
/// cache reuse: the check that the KV-cache path changes nothing.
pub fn greedy_without_cache(
    model: &Model,
    prompt: &[u32],
    max_new_tokens: usize,
) -> Result<Vec<u32>> {
    let mut seq: Vec<u32> = prompt.to_vec();
    let mut out = Vec::new();
    for _ in 0..max_new_tokens {
        let logits = model.logits(&seq, DType::F32)?;
        let v = model.config.vocab;
        let next = crate::sampler::argmax(&logits[(seq.len() - 1) * v..]);
        out.push(next);
        seq.push(next);
    }
    Ok(out)
}
