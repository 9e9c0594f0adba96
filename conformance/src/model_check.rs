//! Model-level agreement: a built-in tiny GLM runs on each backend and on the
//! reference backend. Every node of the backend's prompt step must be within
//! its bound of what its own inputs give; the last position's logits must be
//! within the bound that follows for them (the output projection's own bound
//! on the backend's hidden state, plus the hidden state's difference from the
//! reference's carried through the projection, `Σ|W|·|Δh|`); top-1 tokens
//! over the prompt and the greedy tokens through the KV cache must match.

use std::path::PathBuf;

use glmhal_hal::{Backend, DType, HalError, Result};
use glmhal_model::generate::greedy_without_cache;
use glmhal_model::synth::{synth, Preset, PRESETS};
use glmhal_model::{generate, GenerateOptions, LayerOrder, LoadOptions, Model, Sampling};
use serde::Serialize;

use crate::divergence::{record, NodeRecord};
use crate::reference_backend::ReferenceBackend;
use crate::runner::Status;
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
    /// Max |logit − reference| per prompt position (information).
    pub max_abs_error: Vec<f32>,
    /// Worst `|logit − reference| / bound` at the last position.
    pub logit_bound_ratio: Option<f64>,
    /// Nodes of the prompt step outside their bound (on their own inputs).
    pub nodes_outside: usize,
    /// The first of them.
    pub first_node_outside: Option<String>,
    /// Positions whose top-1 token matches the reference.
    pub top1_agree: usize,
    /// Positions compared.
    pub positions: usize,
    /// Whether the greedy continuation (KV-cache path) matches the reference's.
    pub greedy_match: bool,
    /// Why it did not pass.
    pub detail: Option<String>,
    /// The last position's hidden state after each layer, and its logits
    /// with their bound, kept to compare backends with each other.
    #[serde(skip)]
    pub states: LastPosition,
}

/// One backend's last prompt position, layer by layer.
#[derive(Clone, Debug, Default)]
pub struct LastPosition {
    /// Per layer (`layers.3`), the hidden state after it.
    pub layers: Vec<(String, Vec<f32>)>,
    /// The logits.
    pub logits: Vec<f32>,
    /// Per logit, its bound from the reference's.
    pub logit_bounds: Vec<f64>,
}

/// One built-in model on two backends: hidden states layer by layer and
/// the last logits, compared with each other.
#[derive(Clone, Debug, Serialize)]
pub struct ModelPair {
    /// Built-in model name.
    pub model: String,
    /// One backend.
    pub a: String,
    /// The other.
    pub b: String,
    /// Per layer, how the hidden states after it compare.
    pub layers: Vec<LayerPair>,
    /// Largest `|a − b|` over the last logits.
    pub logits_max_abs: f64,
    /// Largest `|a − b| / (bound_a + bound_b)` over the last logits: above 1,
    /// one of the two is wrong.
    pub logits_ratio: f64,
}

/// Two backends' hidden states after one layer (last position).
#[derive(Clone, Debug, Serialize)]
pub struct LayerPair {
    /// `layers.3`.
    pub layer: String,
    /// Cosine similarity.
    pub cosine: f64,
    /// Largest `|a − b|`.
    pub max_abs: f64,
    /// `‖a − b‖ / ‖a‖`.
    pub rel_l2: f64,
}

/// Every pair of backends that checked the same model, compared.
pub fn pairs(results: &[ModelResult]) -> Vec<ModelPair> {
    let mut out = Vec::new();
    for (i, a) in results.iter().enumerate() {
        for b in &results[i + 1..] {
            let (sa, sb) = (&a.states, &b.states);
            if a.model != b.model || sa.logits.is_empty() || sb.logits.is_empty() {
                continue;
            }
            let layers = sa
                .layers
                .iter()
                .zip(&sb.layers)
                .filter(|((x, _), (y, _))| x == y)
                .map(|((name, p), (_, q))| {
                    let (mut dot, mut pp, mut qq, mut dd, mut worst) = (0.0, 0.0, 0.0, 0.0, 0.0f64);
                    for (u, v) in p.iter().zip(q) {
                        let (u, v) = (f64::from(*u), f64::from(*v));
                        dot += u * v;
                        pp += u * u;
                        qq += v * v;
                        dd += (u - v) * (u - v);
                        worst = worst.max((u - v).abs());
                    }
                    LayerPair {
                        layer: name.clone(),
                        cosine: if pp > 0.0 && qq > 0.0 {
                            dot / (pp * qq).sqrt()
                        } else {
                            1.0
                        },
                        max_abs: worst,
                        rel_l2: if pp > 0.0 {
                            (dd / pp).sqrt()
                        } else {
                            dd.sqrt()
                        },
                    }
                })
                .collect();
            let (mut max_abs, mut ratio) = (0.0f64, 0.0f64);
            for j in 0..sa.logits.len().min(sb.logits.len()) {
                let d = (f64::from(sa.logits[j]) - f64::from(sb.logits[j])).abs();
                max_abs = max_abs.max(d);
                let bound = sa.logit_bounds.get(j).copied().unwrap_or(0.0)
                    + sb.logit_bounds.get(j).copied().unwrap_or(0.0);
                if d > 0.0 {
                    ratio = ratio.max(d / bound);
                }
            }
            out.push(ModelPair {
                model: a.model.clone(),
                a: a.backend.clone(),
                b: b.backend.clone(),
                layers,
                logits_max_abs: max_abs,
                logits_ratio: ratio,
            });
        }
    }
    out
}

/// The reference's answers for one model, computed once.
pub struct ModelExpectation {
    model: BuiltinModel,
    dir: PathBuf,
    prompt: Vec<u32>,
    logits: Vec<f32>,
    greedy: Vec<u32>,
    /// The reference's hidden state entering the output projection, last position.
    hidden: Vec<f32>,
    /// The output projection's weight.
    lm_head: glmhal_hal::HostTensor,
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
    let traced = record(&m, "reference", model.name, &prompt, 0, None, true)?;
    let hidden = projection_input(&traced.nodes)?;
    let lm_head = m.read_weight("lm_head")?;
    Ok(ModelExpectation {
        model: model.clone(),
        dir,
        prompt,
        logits,
        greedy,
        hidden,
        lm_head,
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
        logit_bound_ratio: None,
        nodes_outside: 0,
        first_node_outside: None,
        top1_agree: 0,
        positions: e.prompt.len(),
        greedy_match: false,
        detail: None,
        states: LastPosition::default(),
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
        beyond_context: false,
    };
    let greedy = generate(&m, &e.prompt, &opts, &mut |_| {})?.tokens;
    r.greedy_match = greedy == e.greedy;
    let mut problems = Vec::new();
    let traced = record(&m, &r.backend, e.model.name, &e.prompt, 0, None, true)?;
    let outside: Vec<&NodeRecord> = traced
        .nodes
        .iter()
        .filter(|n| n.local_ratio.is_none_or(|x| x.is_nan() || x > 1.0))
        .collect();
    r.nodes_outside = outside.len();
    if let Some(n) = outside.first() {
        let what = format!(
            "node {} `{}` ({}): {}",
            n.index,
            n.name,
            n.op.name(),
            n.local_ratio.map_or_else(
                || n.check_error.clone().unwrap_or_default(),
                |x| format!("bound ratio {x:.3e} on its own inputs")
            )
        );
        problems.push(format!(
            "{} node(s) outside their bound, the first {what}",
            outside.len()
        ));
        r.first_node_outside = Some(what);
    }
    let (ratio, states) = logit_ratio(&m, e, &traced.nodes, v)?;
    r.logit_bound_ratio = Some(ratio);
    r.states = states;
    if ratio.is_nan() || ratio > 1.0 {
        problems.push(format!(
            "last-position logits {ratio:.3e} times their bound from the reference's"
        ));
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

/// The last position's hidden state entering the output projection (the
/// final norm's output), from a traced prompt step.
fn projection_input(nodes: &[NodeRecord]) -> Result<Vec<f32>> {
    let norm = nodes
        .iter()
        .rev()
        .find(|n| n.name == "final_norm")
        .ok_or_else(|| HalError::invalid("model check", "the step has no final_norm node"))?;
    let values = norm
        .values
        .as_ref()
        .ok_or_else(|| HalError::invalid("model check", "final_norm was not kept"))?;
    let hidden = *norm.shape.last().unwrap_or(&0);
    Ok(values[values.len().saturating_sub(hidden)..].to_vec())
}

/// Worst `|logit − reference| / bound` over the last position's logits:
/// the bound is the output projection's own (as the backend declares it,
/// on the backend's hidden state), the hidden state's difference from the
/// reference's carried through it (`Σₖ|Wⱼₖ|·|Δhₖ|`), and the reference
/// logits' rounding to f32.
fn logit_ratio(
    m: &Model,
    e: &ModelExpectation,
    nodes: &[NodeRecord],
    vocab: usize,
) -> Result<(f64, LastPosition)> {
    let hidden = projection_input(nodes)?;
    let lm = nodes
        .iter()
        .rev()
        .find(|n| n.name == "lm_head")
        .ok_or_else(|| HalError::invalid("model check", "the step has no lm_head node"))?;
    let logits = lm
        .values
        .as_ref()
        .ok_or_else(|| HalError::invalid("model check", "lm_head was not kept"))?;
    let got = &logits[logits.len().saturating_sub(vocab)..];
    let want = &e.logits[e.logits.len().saturating_sub(vocab)..];
    let h = hidden.len();
    let x = glmhal_hal::HostTensor::from_f32(DType::F32, &[1, h], &hidden)?;
    let out = glmhal_hal::TensorDesc::contiguous(DType::F32, &[1, vocab]);
    let op = glmhal_hal::Op::MatMul { bias: false };
    let descs = [x.desc.clone(), e.lm_head.desc.clone()];
    let precision = m
        .backend()
        .precision(&op, &descs, std::slice::from_ref(&out));
    let bounds = glmhal_ops::bounds::error_bounds(&op, &[x, e.lm_head.clone()], &out, &precision)?;
    let w = e.lm_head.to_f64();
    let mut worst = 0.0f64;
    let mut logit_bounds = Vec::with_capacity(vocab);
    for j in 0..vocab {
        let carried: f64 = w[j * h..(j + 1) * h]
            .iter()
            .zip(hidden.iter().zip(&e.hidden))
            .map(|(wk, (a, b))| wk.abs() * (f64::from(*a) - f64::from(*b)).abs())
            .sum();
        let reference = f64::from(want[j]);
        let bound = bounds[j] + carried + glmhal_hal::Arithmetic::F32.half_ulp(reference);
        logit_bounds.push(bound);
        let err = (f64::from(got[j]) - reference).abs();
        let ratio = if err == 0.0 { 0.0 } else { err / bound };
        worst = if ratio.is_nan() || worst.is_nan() {
            f64::NAN
        } else {
            worst.max(ratio)
        };
    }
    let states = LastPosition {
        layers: layer_outputs(nodes, h),
        logits: got.to_vec(),
        logit_bounds,
    };
    Ok((worst, states))
}

/// The last position's hidden state after each layer: the output of the
/// layer's last node (`layers.N.add#1`).
fn layer_outputs(nodes: &[NodeRecord], hidden: usize) -> Vec<(String, Vec<f32>)> {
    let mut out: Vec<(String, Vec<f32>)> = Vec::new();
    for n in nodes {
        let Some(layer) = n.name.strip_suffix(".add#1") else {
            continue;
        };
        if let Some(v) = &n.values {
            out.push((
                layer.to_string(),
                v[v.len().saturating_sub(hidden)..].to_vec(),
            ));
        }
    }
    out
}
