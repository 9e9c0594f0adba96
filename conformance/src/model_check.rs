//! Model-level agreement: a built-in tiny GLM runs on each backend and on the
//! reference backend; logits are compared position by position and greedy
//! tokens must be identical.

use std::path::PathBuf;

use glmhal_hal::{Backend, DType, HalError, Result};
use glmhal_model::generate::greedy_without_cache;
use glmhal_model::synth::{synth, Preset, PRESETS};
use glmhal_model::{generate, GenerateOptions, LayerOrder, LoadOptions, Model, Sampling};
use serde::Serialize;

use crate::reference_backend::ReferenceBackend;
use crate::runner::Status;

/// Largest |logit − reference| allowed at any position (f32 weights and activations).
pub const MAX_ABS_ERROR: f32 = 1e-3;
/// Prompt length of the check.
pub const PROMPT_LEN: usize = 24;
/// Greedy tokens compared.
pub const NEW_TOKENS: usize = 8;

/// One built-in model.
#[derive(Clone, Debug)]
pub struct BuiltinModel {
    /// Name in reports.
    pub name: &'static str,
    /// Its shape.
    pub preset: Preset,
}

/// The built-in models: the `tiny` preset (GLM-4-0414 order) and the same shape in the GLM order.
pub fn builtin_models() -> Vec<BuiltinModel> {
    let tiny = PRESETS[0].clone();
    let glm = Preset {
        name: "tiny-glm",
        order: LayerOrder::Glm,
        ..tiny.clone()
    };
    vec![
        BuiltinModel {
            name: "tiny-glm4",
            preset: tiny,
        },
        BuiltinModel {
            name: "tiny-glm",
            preset: glm,
        },
    ]
}

/// A model check's outcome on one backend.
#[derive(Clone, Debug, Serialize)]
pub struct ModelResult {
    /// Backend selector.
    pub backend: String,
    /// Built-in model name.
    pub model: String,
    /// Pass or fail (or error).
    pub status: Status,
    /// Max |logit − reference| per prompt position.
    pub max_abs_error: Vec<f32>,
    /// Positions whose top-1 token matches the reference.
    pub top1_agree: usize,
    /// Positions compared.
    pub positions: usize,
    /// Whether the greedy continuation (KV-cache path) matches the reference's.
    pub greedy_match: bool,
    /// Why it did not pass.
    pub detail: Option<String>,
}

/// The reference's answers for one model, computed once.
pub struct ModelExpectation {
    model: BuiltinModel,
    dir: PathBuf,
    prompt: Vec<u32>,
    logits: Vec<f32>,
    greedy: Vec<u32>,
}

/// Writes the model to a scratch directory and runs it on the reference backend.
pub fn expect(model: &BuiltinModel) -> Result<ModelExpectation> {
    let dir = std::env::temp_dir().join(format!(
        "glmhal-builtin-{}-{}",
        model.name,
        std::process::id()
    ));
    synth(&model.preset, &dir, DType::F32, 7)?;
    let m = Model::load(
        &dir,
        Box::new(ReferenceBackend::default()),
        LoadOptions::default(),
    )?;
    let prompt: Vec<u32> = (0..PROMPT_LEN as u32)
        .map(|i| (i * 37 + 11) % 256)
        .collect();
    let logits = m.logits(&prompt, DType::F32)?;
    // The reference's greedy continuation by recomputation (no cache): the
    // backends must reach it through their KV cache.
    let greedy = greedy_without_cache(&m, &prompt, NEW_TOKENS)?;
    Ok(ModelExpectation {
        model: model.clone(),
        dir,
        prompt,
        logits,
        greedy,
    })
}

impl Drop for ModelExpectation {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs the check on `backend` (opened by the caller; the model is loaded onto a second instance from `open`).
pub fn check(
    selector: &str,
    open: &dyn Fn() -> Result<Box<dyn Backend>>,
    e: &ModelExpectation,
) -> ModelResult {
    let mut r = ModelResult {
        backend: selector.to_string(),
        model: e.model.name.to_string(),
        status: Status::Error,
        max_abs_error: vec![],
        top1_agree: 0,
        positions: e.prompt.len(),
        greedy_match: false,
        detail: None,
    };
    match run(open, e, &mut r) {
        Ok(()) => {}
        // A backend without every op the model needs says so; that is not a failure, nor a pass.
        Err(err @ HalError::Unsupported { .. }) => {
            r.status = Status::Unsupported;
            r.detail = Some(err.to_string());
        }
        Err(err) => {
            r.status = Status::Error;
            r.detail = Some(err.to_string());
        }
    }
    r
}

fn run(
    open: &dyn Fn() -> Result<Box<dyn Backend>>,
    e: &ModelExpectation,
    r: &mut ModelResult,
) -> Result<()> {
    let m = Model::load(&e.dir, open()?, LoadOptions::default())?;
    let logits = m.logits(&e.prompt, DType::F32)?;
    if logits.len() != e.logits.len() {
        return Err(HalError::invalid("model check", "logits of the wrong size"));
    }
    let v = m.config.vocab;
    let argmax = glmhal_model::sampler::argmax;
    for (got, want) in logits.chunks_exact(v).zip(e.logits.chunks_exact(v)) {
        let err = got
            .iter()
            .zip(want)
            .map(|(a, b)| {
                if a.is_nan() {
                    f32::INFINITY
                } else {
                    (a - b).abs()
                }
            })
            .fold(0.0, f32::max);
        r.max_abs_error.push(err);
        r.top1_agree += usize::from(argmax(got) == argmax(want));
    }
    let opts = GenerateOptions {
        max_new_tokens: NEW_TOKENS,
        sampling: Sampling::default(),
        stop: vec![],
        context: None,
        cache_dtype: DType::F32,
    };
    let greedy = generate(&m, &e.prompt, &opts, &mut |_| {})?.tokens;
    r.greedy_match = greedy == e.greedy;
    let worst = r.max_abs_error.iter().cloned().fold(0.0, f32::max);
    let mut problems = Vec::new();
    if worst > MAX_ABS_ERROR {
        problems.push(format!("max |logit error| {worst:.2e} > {MAX_ABS_ERROR:e}"));
    }
    if r.top1_agree != r.positions {
        problems.push(format!(
            "top-1 agrees at {}/{} positions",
            r.top1_agree, r.positions
        ));
    }
    if !r.greedy_match {
        problems.push(format!(
            "greedy tokens {greedy:?} differ from the reference's {:?}",
            e.greedy
        ));
    }
    r.status = if problems.is_empty() {
        Status::Pass
    } else {
        Status::Fail
    };
    r.detail = (!problems.is_empty()).then(|| problems.join("; "));
    Ok(())
}
