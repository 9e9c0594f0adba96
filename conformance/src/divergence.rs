//! Where two backends part: a model run node by node on each, every node's
//! output compared across them, and every node checked against the exact
//! result of its own inputs under its own backend's bound.
//!
//! A node whose output lies within its bound of what its inputs give is
//! honest, however far its inputs have drifted from the other backend's:
//! the drift was explained by earlier nodes. The first node that is not is
//! where the backends part ([`Divergence::first`]). Each backend is checked
//! where it runs, so two dumps made on different machines
//! ([`Dump`], `glmhal dump`) carry the same verdicts as a live run.

use std::path::{Path, PathBuf};

use glmhal_hal::{DType, HalError, HostTensor, Op, OpKind, Precision, Result};
use glmhal_model::trace::TracedNode;
use glmhal_model::{Model, SeqStep, StepOutput, Want};
use glmhal_ops::bounds::{error_bounds, rule};
use serde::{Deserialize, Serialize};

use crate::metrics::{compare, Expected};
use crate::report::ratio_text as ratio;

/// Schema of a dump's `index.json`.
pub const DUMP_SCHEMA: &str = "glmhal.dump/1";

/// Summary statistics of a node's output (logical order, as f64).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
    /// Mean.
    pub mean: f64,
    /// Euclidean norm.
    pub l2: f64,
    /// FNV-1a of the output's logical values as f32 bits, in hex: equal
    /// outputs have equal checksums.
    pub checksum: String,
}

impl Stats {
    fn of(values: &[f32]) -> Stats {
        let n = values.len().max(1) as f64;
        let mut s = Stats {
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            ..Stats::default()
        };
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        let (mut sum, mut sq) = (0.0f64, 0.0f64);
        for v in values {
            let x = f64::from(*v);
            s.min = s.min.min(x);
            s.max = s.max.max(x);
            sum += x;
            sq += x * x;
            for b in v.to_bits().to_le_bytes() {
                hash = (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
            }
        }
        s.mean = sum / n;
        s.l2 = sq.sqrt();
        s.checksum = format!("{hash:016x}");
        s
    }
}

/// One node of one backend's run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NodeRecord {
    /// 0 for the prompt, then one per decode step.
    pub step: usize,
    /// Place in the step's graph.
    pub index: usize,
    /// Node name (`layers.3.qkv`, `layers.3.rope#1`).
    pub name: String,
    /// The op.
    pub op: Op,
    /// Where each input came from.
    pub sources: Vec<String>,
    /// Output shape.
    pub shape: Vec<usize>,
    /// Output dtype.
    pub dtype: DType,
    /// Output statistics.
    pub stats: Stats,
    /// What the backend declared for this node.
    pub precision: Precision,
    /// Worst `|output − exact(inputs)| / bound` over the output (the
    /// output against the exact result of this backend's own inputs):
    /// above 1, this node computed something its inputs do not give.
    /// `None` when it could not be checked (the reason in `check_error`).
    pub local_ratio: Option<f64>,
    /// Why the local check could not run, if it could not.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub check_error: Option<String>,
    /// The output tensor's file in a dump (`tensors/s0-n17.npy`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub tensor: Option<String>,
    /// The output values (logical order), kept in memory for a live diff
    /// or read from a dump's tensor file.
    #[serde(skip)]
    pub values: Option<Vec<f32>>,
}

/// One backend's run of a model: every node of every step.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Dump {
    /// Always [`DUMP_SCHEMA`].
    pub schema: String,
    /// Backend selector.
    pub backend: String,
    /// Its device, in words.
    pub device: String,
    /// The model directory or file.
    pub model: String,
    /// The prompt's tokens.
    pub prompt: Vec<u32>,
    /// The token fed to each decode step.
    pub decoded: Vec<u32>,
    /// Every node of every step, in order.
    pub nodes: Vec<NodeRecord>,
}

/// Runs the prompt and `decode_steps` decode steps on `model` node by node,
/// recording every node. Decode steps feed `feed` where given (so a second
/// backend sees the same tokens as the first), else this backend's own
/// greedy choice.
pub fn record(
    model: &Model,
    selector: &str,
    model_name: &str,
    prompt: &[u32],
    decode_steps: usize,
    feed: Option<&[u32]>,
    keep_values: bool,
) -> Result<Dump> {
    if prompt.is_empty() {
        return Err(HalError::invalid("diff", "the prompt has no tokens"));
    }
    let cache = model.new_cache(prompt.len() + decode_steps, 1, DType::F32)?;
    let backend = model.backend();
    let mut nodes = Vec::new();
    let mut decoded = Vec::new();
    let mut tokens: Vec<u32> = prompt.to_vec();
    let mut start = 0;
    for step in 0..=decode_steps {
        let seqs = [SeqStep {
            slot: 0,
            start,
            len: tokens.len(),
        }];
        let out = model.step_traced(&cache, &seqs, &tokens, Want::LastLogits, &mut |n| {
            nodes.push(node_record(backend, step, n, keep_values));
            Ok(())
        })?;
        start += tokens.len();
        if step == decode_steps {
            break;
        }
        let next = match feed.and_then(|f| f.get(step)) {
            Some(t) => *t,
            None => match out {
                StepOutput::Logits(l) => glmhal_model::sampler::argmax(&l) as u32,
                StepOutput::Tokens(t) => t.first().copied().unwrap_or(0),
            },
        };
        decoded.push(next);
        tokens = vec![next];
    }
    Ok(Dump {
        schema: DUMP_SCHEMA.into(),
        backend: selector.into(),
        device: backend.info().name.clone(),
        model: model_name.into(),
        prompt: prompt.to_vec(),
        decoded,
        nodes,
    })
}

fn node_record(
    backend: &dyn glmhal_hal::Backend,
    step: usize,
    n: &TracedNode<'_>,
    keep_values: bool,
) -> NodeRecord {
    let in_descs: Vec<_> = n.inputs.iter().map(|t| t.desc.clone()).collect();
    let precision = backend.precision(n.op, &in_descs, std::slice::from_ref(&n.output.desc));
    let values = n.output.to_f32();
    let (local_ratio, check_error) = match local_ratio(n, &precision) {
        Ok(r) => (Some(r), None),
        Err(e) => (None, Some(e.to_string())),
    };
    NodeRecord {
        step,
        index: n.index,
        name: n.name.to_string(),
        op: n.op.clone(),
        sources: n.sources.to_vec(),
        shape: n.output.desc.shape.to_vec(),
        dtype: n.output.desc.dtype,
        stats: Stats::of(&values),
        precision,
        local_ratio,
        check_error,
        tensor: None,
        values: keep_values.then_some(values),
    }
}

/// The node's output against the exact result of its own inputs, over its bound.
fn local_ratio(n: &TracedNode<'_>, precision: &Precision) -> Result<f64> {
    let before = n.output_before.unwrap_or(n.output).clone();
    let exact = glmhal_ops::reference::values(n.op, n.inputs, std::slice::from_ref(&before))?;
    let mut rounded = before.clone();
    glmhal_ops::reference::execute(n.op, n.inputs, std::slice::from_mut(&mut rounded))?;
    let rounded = decode(&rounded)?;
    let bounds = error_bounds(n.op, n.inputs, &n.output.desc, precision)?;
    let got = decode(n.output)?;
    let expected = Expected {
        rule: rule(n.op),
        exact: &exact,
        rounded: &rounded,
        bounds: &bounds,
        output: glmhal_hal::Arithmetic::of(n.output.desc.dtype),
    };
    let (errors, mismatch) = compare(&expected, &got);
    Ok(match (errors.bound_ratio, mismatch) {
        (Some(r), None) => r,
        (None, None) => 0.0,
        (Some(r), Some(_)) if r.is_finite() => r.max(1.0 + f64::EPSILON),
        _ => f64::INFINITY,
    })
}

fn decode(t: &HostTensor) -> Result<Vec<f64>> {
    if t.desc.dtype == DType::I32 {
        return Ok(t.to_i32()?.into_iter().map(f64::from).collect());
    }
    Ok(t.to_f64())
}

/// One node of two runs side by side.
#[derive(Clone, Debug, Serialize)]
pub struct NodeDiff {
    /// 0 for the prompt, then one per decode step.
    pub step: usize,
    /// Place in the step's graph.
    pub index: usize,
    /// Node name.
    pub name: String,
    /// Op name.
    pub op: OpKind,
    /// Output shape.
    pub shape: Vec<usize>,
    /// Cosine similarity of the two outputs (when both have values).
    pub cosine: Option<f64>,
    /// Largest `|a − b|` (when both have values).
    pub max_abs: Option<f64>,
    /// `Σ(a − b)² / Σa²` (when both have values).
    pub nmse: Option<f64>,
    /// Relative difference of the outputs' norms.
    pub l2_rel: f64,
    /// Whether the outputs are bit-identical (equal checksums).
    pub identical: bool,
    /// Backend A's local bound ratio.
    pub local_a: Option<f64>,
    /// Backend B's local bound ratio.
    pub local_b: Option<f64>,
}

/// Two runs compared node by node.
#[derive(Clone, Debug, Serialize)]
pub struct Divergence {
    /// Backend A.
    pub a: String,
    /// Backend B.
    pub b: String,
    /// Every node.
    pub nodes: Vec<NodeDiff>,
    /// The first node (position in `nodes`) whose output is not what its
    /// own inputs give on A or on B.
    pub first: Option<usize>,
}

/// Compares two runs of the same model and prompt.
pub fn compare_runs(a: &Dump, b: &Dump) -> Result<Divergence> {
    if a.nodes.len() != b.nodes.len() || a.prompt != b.prompt {
        return Err(HalError::invalid(
            "diff",
            format!(
                "the two runs differ in shape: {} nodes over {} prompt tokens against {} over {}",
                a.nodes.len(),
                a.prompt.len(),
                b.nodes.len(),
                b.prompt.len()
            ),
        ));
    }
    let mut nodes = Vec::with_capacity(a.nodes.len());
    for (x, y) in a.nodes.iter().zip(&b.nodes) {
        if (x.step, x.index, &x.name) != (y.step, y.index, &y.name) || x.shape != y.shape {
            return Err(HalError::invalid(
                "diff",
                format!(
                    "step {} node {} is `{}` {:?} in one run and `{}` {:?} in the other",
                    x.step, x.index, x.name, x.shape, y.name, y.shape
                ),
            ));
        }
        let (cosine, max_abs, nmse) = match (&x.values, &y.values) {
            (Some(p), Some(q)) => {
                let (mut dot, mut pp, mut qq, mut worst, mut num) = (0.0, 0.0, 0.0, 0.0f64, 0.0);
                for (u, v) in p.iter().zip(q) {
                    let (u, v) = (f64::from(*u), f64::from(*v));
                    dot += u * v;
                    pp += u * u;
                    qq += v * v;
                    worst = worst.max((u - v).abs());
                    num += (u - v) * (u - v);
                }
                let cos = if pp > 0.0 && qq > 0.0 {
                    dot / (pp.sqrt() * qq.sqrt())
                } else if pp == qq {
                    1.0
                } else {
                    0.0
                };
                (
                    Some(cos),
                    Some(worst),
                    Some(if pp > 0.0 { num / pp } else { num }),
                )
            }
            _ => (None, None, None),
        };
        let l2_rel = if x.stats.l2 > 0.0 {
            (x.stats.l2 - y.stats.l2).abs() / x.stats.l2
        } else {
            y.stats.l2
        };
        nodes.push(NodeDiff {
            step: x.step,
            index: x.index,
            name: x.name.clone(),
            op: x.op.kind(),
            shape: x.shape.clone(),
            cosine,
            max_abs,
            nmse,
            l2_rel,
            identical: x.stats.checksum == y.stats.checksum,
            local_a: x.local_ratio,
            local_b: y.local_ratio,
        });
    }
    let first = nodes
        .iter()
        .position(|n| n.local_a.is_some_and(out_of_bound) || n.local_b.is_some_and(out_of_bound));
    Ok(Divergence {
        a: a.backend.clone(),
        b: b.backend.clone(),
        nodes,
        first,
    })
}

impl Divergence {
    /// The table and the verdict, for a terminal.
    pub fn render(&self) -> String {
        let mut s = format!(
            "{:<5} {:>4} {:<24} {:<16} {:>12} {:>10} {:>10} {:>10} {:>10}\n",
            "step",
            "node",
            "name",
            "op",
            "cosine",
            "max|a-b|",
            "nmse",
            format!("A {}", short(&self.a)),
            format!("B {}", short(&self.b)),
        );
        let opt = |v: Option<f64>, f: fn(f64) -> String| v.map_or("-".to_string(), f);
        for (i, n) in self.nodes.iter().enumerate() {
            let mark = if Some(i) == self.first {
                "  <- first divergence"
            } else {
                ""
            };
            s.push_str(&format!(
                "{:<5} {:>4} {:<24} {:<16} {:>12} {:>10} {:>10} {:>10} {:>10}{mark}\n",
                if n.step == 0 {
                    "pre".to_string()
                } else {
                    format!("dec{}", n.step)
                },
                n.index,
                n.name,
                n.op.name(),
                opt(n.cosine, |c| format!("{c:.9}")),
                opt(n.max_abs, |m| format!("{m:.2e}")),
                opt(n.nmse, |m| format!("{m:.2e}")),
                opt(n.local_a, ratio),
                opt(n.local_b, ratio),
            ));
        }
        s.push('\n');
        s.push_str(&self.verdict());
        s.push('\n');
        s
    }

    /// One paragraph: where the backends part, or that no node does.
    pub fn verdict(&self) -> String {
        match self.first {
            Some(i) => {
                let n = &self.nodes[i];
                let culprit = |r: Option<f64>| r.is_some_and(out_of_bound);
                let who: Vec<String> = [("A", &self.a, n.local_a), ("B", &self.b, n.local_b)]
                    .iter()
                    .filter(|(_, _, r)| culprit(*r))
                    .map(|(side, b, _)| format!("{side} ({b})"))
                    .collect();
                format!(
                    "first divergence: {} node {} `{}` ({}): on {} its output is not what its own inputs give (bound ratio {} on A ({}), {} on B ({})); every node before it is within its bound",
                    if n.step == 0 { "prompt step".to_string() } else { format!("decode step {}", n.step) },
                    n.index,
                    n.name,
                    n.op,
                    who.join(" and "),
                    n.local_a.map_or("-".into(), ratio),
                    self.a,
                    n.local_b.map_or("-".into(), ratio),
                    self.b,
                )
            }
            None => {
                let worst = self
                    .nodes
                    .iter()
                    .flat_map(|n| [n.local_a, n.local_b].into_iter().flatten())
                    .fold(0.0f64, f64::max);
                format!(
                    "no divergence: every node of {} and {} is within its bound of what its own inputs give (largest bound ratio {}); differences are rounding, carried forward",
                    self.a,
                    self.b,
                    ratio(worst)
                )
            }
        }
    }
}

/// A bound ratio over 1 (or NaN): the node is not what its inputs give.
fn out_of_bound(r: f64) -> bool {
    r.is_nan() || r > 1.0
}

fn short(s: &str) -> String {
    s.chars().take(6).collect()
}

impl Dump {
    /// Writes `index.json` (and, with `tensors`, every node's output as
    /// `tensors/s{step}-n{index}.npy`) into `dir`, which must not exist or
    /// be empty: nothing a user has is overwritten.
    pub fn write(&mut self, dir: &Path, tensors: bool) -> Result<()> {
        let io = |what: String| move |e| HalError::io(what, e);
        if dir.exists()
            && std::fs::read_dir(dir)
                .map_err(io(format!("reading {}", dir.display())))?
                .next()
                .is_some()
        {
            return Err(HalError::invalid(
                "dump",
                format!(
                    "{} exists and is not empty; choose a new directory",
                    dir.display()
                ),
            ));
        }
        std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
        if tensors {
            let tdir = dir.join("tensors");
            std::fs::create_dir_all(&tdir).map_err(io(format!("creating {}", tdir.display())))?;
            for n in &mut self.nodes {
                let Some(values) = &n.values else { continue };
                let name = format!("tensors/s{}-n{}.npy", n.step, n.index);
                glmhal_model::npy::write_f32(&dir.join(&name), values, &n.shape)?;
                n.tensor = Some(name);
            }
        }
        let text = serde_json::to_string_pretty(self)
            .map_err(|e| HalError::invalid("dump", e.to_string()))?;
        let index = dir.join("index.json");
        glmhal_hal::output::write_atomic(&index, text.as_bytes())
    }

    /// Reads a dump written by [`Dump::write`], with its tensors where it has them.
    pub fn read(dir: &Path) -> Result<Dump> {
        let index: PathBuf = dir.join("index.json");
        let text = std::fs::read_to_string(&index)
            .map_err(|e| HalError::io(format!("reading {}", index.display()), e))?;
        let mut dump: Dump = serde_json::from_str(&text).map_err(|e| {
            HalError::invalid(
                format!("{}", index.display()),
                format!("not a {DUMP_SCHEMA} index: {e}"),
            )
        })?;
        if dump.schema != DUMP_SCHEMA {
            return Err(HalError::invalid(
                format!("{}", index.display()),
                format!("schema `{}`, expected {DUMP_SCHEMA}", dump.schema),
            ));
        }
        for n in &mut dump.nodes {
            if let Some(file) = &n.tensor {
                let (values, shape) = glmhal_model::npy::read_f32(&dir.join(file))?;
                if shape != n.shape {
                    return Err(HalError::invalid(
                        file.clone(),
                        format!("shape {shape:?}, the index says {:?}", n.shape),
                    ));
                }
                n.values = Some(values);
            }
        }
        Ok(dump)
    }
}
