//! The GLM forward pass as a list of catalogue ops over planned activations.
//!
//! One builder serves prefill and decode: a step is a batch of sequences,
//! each contributing `len` consecutive tokens from its own position. The
//! rows of all sequences are stacked, so every projection is one matmul;
//! cache writes and attention are per sequence, on views of its cache slot.

use std::cell::RefCell;
use std::fmt::Write as _;

use glmhal_hal::{DType, Op, TensorDesc};
use smallvec::{smallvec, SmallVec};

use crate::config::{LayerOrder, ModelConfig};
use crate::plan::Lifetime;

/// Nodes an activation stays live past the last node that reads it, so a
/// backend may run a node in one kernel with the next ones (reading this
/// input while writing their outputs) without the arena placing one of
/// those outputs over it.
pub const FUSION_WINDOW: usize = 2;

/// Which memory an operand lives in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Storage {
    /// A planned activation.
    Act(usize),
    /// A model weight, by index in the weight table.
    Weight(usize),
    /// Layer `n`'s key cache.
    KCache(usize),
    /// Layer `n`'s value cache.
    VCache(usize),
    /// The step's i32 inputs: tokens, positions, rows to keep.
    Io,
}

/// A tensor in a storage.
#[derive(Clone, Debug)]
pub struct Operand {
    /// Where.
    pub storage: Storage,
    /// The view (offsets relative to the storage's start).
    pub desc: TensorDesc,
}

/// One op of the step.
#[derive(Clone, Debug)]
pub struct Node {
    /// The op.
    pub op: Op,
    /// Its inputs.
    pub inputs: Inputs,
    /// Its output.
    pub output: Operand,
}

/// One sequence's part of a step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SeqStep {
    /// KV cache slot of the sequence.
    pub slot: usize,
    /// Position of its first token in this step.
    pub start: usize,
    /// Tokens it contributes.
    pub len: usize,
}

/// What the step returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Want {
    /// Logits of every row.
    AllLogits,
    /// Logits of each sequence's last row.
    LastLogits,
    /// The argmax token of each sequence's last row (only 4 bytes a sequence come back).
    Greedy,
}

/// Names of the weights the graph reads, resolved by the caller.
pub trait WeightTable {
    /// Index and descriptor of a canonical weight (`layers.0.qkv.weight`).
    fn lookup(&self, name: &str) -> Option<(usize, TensorDesc)>;
}

/// The step: nodes, activation lifetimes and the result operand.
#[derive(Clone, Debug)]
pub struct Graph {
    /// Ops in order.
    pub nodes: Vec<Node>,
    /// Size and lifetime of every activation.
    pub acts: Vec<Lifetime>,
    /// The output to download.
    pub result: Operand,
    /// i32 elements of the Io storage: tokens, positions, rows kept.
    pub io_len: usize,
    /// Storage for the weight names looked up while building.
    names: String,
}

/// Geometry of the KV cache the graph writes into.
#[derive(Clone, Copy, Debug)]
pub struct CacheShape {
    /// Element type.
    pub dtype: DType,
    /// Positions per slot.
    pub capacity: usize,
}

/// An op's inputs, inline (at most four in the catalogue).
pub type Inputs = SmallVec<[Operand; 4]>;

pub(crate) struct Builder<'a> {
    nodes: Vec<Node>,
    acts: Vec<Lifetime>,
    weights: &'a dyn WeightTable,
    /// Reused for the weight names of every layer.
    name: RefCell<String>,
}

impl Builder<'_> {
    pub(crate) fn act(&mut self, shape: &[usize]) -> Operand {
        let desc = TensorDesc::contiguous(DType::F32, shape);
        self.acts.push(Lifetime {
            bytes: DType::F32.bytes_for(desc.numel()),
            first: usize::MAX,
            last: 0,
        });
        Operand {
            storage: Storage::Act(self.acts.len() - 1),
            desc,
        }
    }

    fn weight(&self, name: &str) -> Result<Operand, String> {
        let (i, desc) = self
            .weights
            .lookup(name)
            .ok_or_else(|| format!("weight `{name}` was not loaded"))?;
        Ok(Operand {
            storage: Storage::Weight(i),
            desc,
        })
    }

    /// Weight `layers.{layer}.{suffix}`, named in a reused buffer.
    pub(crate) fn layer_weight(&self, layer: usize, suffix: &str) -> Result<Operand, String> {
        let mut name = self.name.borrow_mut();
        name.clear();
        // Writing into a String cannot fail.
        let _ = write!(name, "layers.{layer}.{suffix}");
        self.weight(&name)
    }

    pub(crate) fn push(&mut self, op: Op, inputs: Inputs, output: Operand) {
        let at = self.nodes.len();
        for (i, o) in inputs.iter().chain(std::iter::once(&output)).enumerate() {
            if let Storage::Act(a) = o.storage {
                let l = &mut self.acts[a];
                l.first = l.first.min(at);
                // Inputs outlive their reader by FUSION_WINDOW nodes.
                let until = if i < inputs.len() {
                    at + FUSION_WINDOW
                } else {
                    at
                };
                l.last = l.last.max(until);
            }
        }
        self.nodes.push(Node { op, inputs, output });
    }

    /// `out = op(inputs)` into a fresh activation.
    pub(crate) fn apply(&mut self, op: Op, inputs: Inputs, shape: &[usize]) -> Operand {
        let out = self.act(shape);
        self.push(op, inputs, out.clone());
        out
    }
}

fn io(offset_elems: usize, len: usize) -> Operand {
    Operand {
        storage: Storage::Io,
        desc: TensorDesc::strided(DType::I32, &[len], &[1], offset_elems * 4),
    }
}

/// Rows `[r0, r0 + len)` of a `[N, heads, D]`-like view.
fn rows(o: &Operand, r0: usize, len: usize) -> Operand {
    let mut desc = o.desc.clone();
    desc.offset += r0 * desc.strides[0] * desc.dtype.block_bytes();
    desc.shape[0] = len;
    Operand {
        storage: o.storage,
        desc,
    }
}

pub(crate) fn reshape(o: &Operand, shape: &[usize]) -> Operand {
    Operand {
        storage: o.storage,
        desc: TensorDesc::strided(
            o.desc.dtype,
            shape,
            &glmhal_hal::contiguous_strides(shape),
            o.desc.offset,
        ),
    }
}

/// Builds the forward step for `seqs` (with `Want`), or says which weight is missing.
pub fn build(
    c: &ModelConfig,
    weights: &dyn WeightTable,
    cache: CacheShape,
    seqs: &[SeqStep],
    want: Want,
) -> Result<Graph, String> {
    let mut graph = Graph::empty();
    graph.rebuild(c, weights, cache, seqs, want)?;
    Ok(graph)
}

impl Default for Graph {
    fn default() -> Self {
        Self::empty()
    }
}

impl Graph {
    /// A graph with no nodes, for [`Graph::rebuild`] to fill.
    pub fn empty() -> Self {
        Graph {
            nodes: Vec::new(),
            acts: Vec::new(),
            result: io(0, 0),
            io_len: 0,
            names: String::new(),
        }
    }

    /// Builds the step for `seqs` in place of this graph's contents. The
    /// lists keep their storage, so once they have grown to a step's size,
    /// rebuilding (every decode step) allocates nothing.
    pub fn rebuild(
        &mut self,
        c: &ModelConfig,
        weights: &dyn WeightTable,
        cache: CacheShape,
        seqs: &[SeqStep],
        want: Want,
    ) -> Result<(), String> {
        // Nodes of one layer: two norms (four for GLM-4, two more with q/k
        // norms), three products (ten with experts), two ropes, two adds,
        // swiglu, and a cache write pair and an attention per sequence;
        // reserved once so the lists never grow.
        let per_layer = 24 + 3 * seqs.len();
        let mut nodes = std::mem::take(&mut self.nodes);
        let mut acts = std::mem::take(&mut self.acts);
        let mut names = std::mem::take(&mut self.names);
        nodes.clear();
        acts.clear();
        names.clear();
        nodes.reserve(c.layers * per_layer + 8);
        acts.reserve(c.layers * per_layer + 8);
        names.reserve(64);
        let mut g = Builder {
            nodes,
            acts,
            weights,
            name: RefCell::new(names),
        };
        let built = forward(&mut g, c, cache, seqs, want);
        self.nodes = g.nodes;
        self.acts = g.acts;
        self.names = g.name.into_inner();
        (self.result, self.io_len) = built?;
        Ok(())
    }
}

/// The nodes of the step, appended to `g`; returns the result operand and
/// the length of the Io storage.
fn forward(
    g: &mut Builder<'_>,
    c: &ModelConfig,
    cache: CacheShape,
    seqs: &[SeqStep],
    want: Want,
) -> Result<(Operand, usize), String> {
    let n: usize = seqs.iter().map(|s| s.len).sum();
    let b = seqs.len();
    let h = c.hidden;
    let tokens = io(0, n);
    let step = Step {
        c,
        cache: &cache,
        seqs,
        n,
        positions: io(n, n),
    };
    let keep = io(2 * n, b);

    let mut x = g.apply(Op::GetRows, smallvec![g.weight("embed")?, tokens], &[n, h]);
    for layer in 0..c.layers {
        let o = attention_block(g, &step, layer, &x)?;
        let x2 = g.apply(Op::Add, smallvec![x, o], &[n, h]);
        let d = ffn_block(g, c, n, layer, &x2)?;
        x = g.apply(Op::Add, smallvec![x2, d], &[n, h]);
    }
    let result = output_head(g, c, (n, b), want, x, keep)?;
    // The result is read after the last node: keep it alive to the end.
    if let Storage::Act(a) = result.storage {
        g.acts[a].last = g.nodes.len();
    }
    Ok((result, 2 * n + b))
}

/// What every layer's blocks of one step read.
struct Step<'a> {
    c: &'a ModelConfig,
    cache: &'a CacheShape,
    seqs: &'a [SeqStep],
    /// Rows of the step (every sequence's tokens).
    n: usize,
    /// Each row's position, from the Io storage.
    positions: Operand,
}

/// Layer `layer`'s attention on `x`: norm, qkv (+bias), rope on q and k,
/// K and V into each sequence's cache, attention over its prefix, the
/// output projection (and GLM-4's post-attention norm).
fn attention_block(
    g: &mut Builder<'_>,
    step: &Step<'_>,
    layer: usize,
    x: &Operand,
) -> Result<Operand, String> {
    let (c, cache, n) = (step.c, step.cache, step.n);
    let (h, nh, nkv, hd) = (c.hidden, c.heads, c.kv_heads, c.head_dim);
    let width = c.qkv_width();
    let rope = Op::Rope {
        rot: c.rotary_dim,
        theta: c.rope_theta,
        mode: c.rope_mode,
    };
    let hn = g.apply(
        Op::RmsNorm { eps: c.rms_eps },
        smallvec![x.clone(), g.layer_weight(layer, "input_norm")?],
        &[n, h],
    );
    let mut qkv_in = smallvec![hn, g.layer_weight(layer, "qkv.weight")?];
    if c.qkv_bias {
        qkv_in.push(g.layer_weight(layer, "qkv.bias")?);
    }
    let qkv = g.apply(Op::MatMul { bias: c.qkv_bias }, qkv_in, &[n, width]);
    let head_view = |heads: usize, first_head: usize| Operand {
        storage: qkv.storage,
        desc: TensorDesc::strided(
            DType::F32,
            &[n, heads, hd],
            &[width, hd, 1],
            first_head * hd * 4,
        ),
    };
    let (q, k, v) = (
        head_view(nh, 0),
        head_view(nkv, nh),
        head_view(nkv, nh + nkv),
    );
    // glm4_moe: each head of q and k RMS-normed before rope.
    let (q, k) = if c.qk_norm {
        let norm = |g: &mut Builder<'_>, x: Operand, weight: &str, heads: usize| {
            let w = g.layer_weight(layer, weight)?;
            Ok::<_, String>(g.apply(
                Op::RmsNorm { eps: c.rms_eps },
                smallvec![x, w],
                &[n, heads, hd],
            ))
        };
        (norm(g, q, "q_norm", nh)?, norm(g, k, "k_norm", nkv)?)
    } else {
        (q, k)
    };
    let positions = &step.positions;
    let qr = g.apply(rope.clone(), smallvec![q, positions.clone()], &[n, nh, hd]);
    let kr = g.apply(rope, smallvec![k, positions.clone()], &[n, nkv, hd]);
    let attn = g.act(&[n, nh, hd]);
    let mut r0 = 0;
    for s in step.seqs {
        let slot_bytes = cache.dtype.bytes_for(cache.capacity * nkv * hd);
        let cache_view = |storage: Storage, len: usize| Operand {
            storage,
            desc: TensorDesc::strided(
                cache.dtype,
                &[len, nkv, hd],
                &[nkv * hd, hd, 1],
                s.slot * slot_bytes,
            ),
        };
        let pos = rows(positions, r0, s.len);
        g.push(
            Op::KvWrite,
            smallvec![rows(&kr, r0, s.len), pos.clone()],
            cache_view(Storage::KCache(layer), cache.capacity),
        );
        g.push(
            Op::KvWrite,
            smallvec![rows(&v, r0, s.len), pos],
            cache_view(Storage::VCache(layer), cache.capacity),
        );
        let seen = s.start + s.len;
        g.push(
            Op::Attention {
                scale: (hd as f64).powf(-0.5),
                causal: true,
            },
            smallvec![
                rows(&qr, r0, s.len),
                cache_view(Storage::KCache(layer), seen),
                cache_view(Storage::VCache(layer), seen),
            ],
            rows(&attn, r0, s.len),
        );
        r0 += s.len;
    }
    let o = g.apply(
        Op::MatMul { bias: false },
        smallvec![
            reshape(&attn, &[n, nh * hd]),
            g.layer_weight(layer, "o.weight")?
        ],
        &[n, h],
    );
    post_norm(g, c, layer, "post_attn_norm", o, n)
}

/// Layer `layer`'s feed-forward block on `x`: norm, gate and up in one
/// product, SwiGLU, down (and GLM-4's post-MLP norm).
fn ffn_block(
    g: &mut Builder<'_>,
    c: &ModelConfig,
    n: usize,
    layer: usize,
    x: &Operand,
) -> Result<Operand, String> {
    let h = c.hidden;
    let hn = g.apply(
        Op::RmsNorm { eps: c.rms_eps },
        smallvec![x.clone(), g.layer_weight(layer, "mlp_norm")?],
        &[n, h],
    );
    if let Some(moe) = c.moe.as_ref().filter(|m| m.routes(layer)) {
        let d = crate::moe_graph::routed_ffn(g, moe, (n, h, layer), hn)?;
        return post_norm(g, c, layer, "post_mlp_norm", d, n);
    }
    let gu = g.apply(
        Op::MatMul { bias: false },
        smallvec![hn, g.layer_weight(layer, "gate_up.weight")?],
        &[n, 2 * c.intermediate],
    );
    let a = g.apply(Op::SwiGlu, smallvec![gu], &[n, c.intermediate]);
    let d = g.apply(
        Op::MatMul { bias: false },
        smallvec![a, g.layer_weight(layer, "down.weight")?],
        &[n, h],
    );
    post_norm(g, c, layer, "post_mlp_norm", d, n)
}

/// GLM-4's extra norm after a block (`weight`), or `x` as it is for GLM.
fn post_norm(
    g: &mut Builder<'_>,
    c: &ModelConfig,
    layer: usize,
    weight: &str,
    x: Operand,
    n: usize,
) -> Result<Operand, String> {
    if c.order != LayerOrder::Glm4 {
        return Ok(x);
    }
    Ok(g.apply(
        Op::RmsNorm { eps: c.rms_eps },
        smallvec![x, g.layer_weight(layer, weight)?],
        &[n, c.hidden],
    ))
}

/// The rows asked for (each sequence's last, or all), the final norm, the
/// logits, and their argmax when greedy.
fn output_head(
    g: &mut Builder<'_>,
    c: &ModelConfig,
    (n, b): (usize, usize),
    want: Want,
    x: Operand,
    keep: Operand,
) -> Result<Operand, String> {
    let h = c.hidden;
    let kept = if want == Want::AllLogits { n } else { b };
    let last = if want == Want::AllLogits {
        x
    } else {
        g.apply(Op::GetRows, smallvec![x, keep], &[b, h])
    };
    let normed = g.apply(
        Op::RmsNorm { eps: c.rms_eps },
        smallvec![last, g.weight("final_norm")?],
        &[kept, h],
    );
    let logits = g.apply(
        Op::MatMul { bias: false },
        smallvec![normed, g.weight("lm_head")?],
        &[kept, c.vocab],
    );
    Ok(if want == Want::Greedy {
        let ids = g.act(&[b]);
        let ids = Operand {
            storage: ids.storage,
            desc: TensorDesc::contiguous(DType::I32, &[b]),
        };
        g.push(Op::Argmax, smallvec![logits], ids.clone());
        ids
    } else {
        logits
    })
}
