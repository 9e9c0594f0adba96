//! The op catalogue as data: what each op takes and gives, for docs, the CLI
//! (`glmhal ops --json`) and coverage reports.

use glmhal_hal::{DType, Op, OpKind, RopeMode};
use serde::Serialize;

/// One tensor argument of an op.
#[derive(Clone, Debug, Serialize)]
pub struct ArgSpec {
    /// Name used in error messages.
    pub name: &'static str,
    /// Shape, in symbols (`[M,K]`).
    pub shape: &'static str,
    /// The dtypes it accepts.
    pub dtypes: Vec<DType>,
    /// Present only with some parameters (the matmul bias).
    pub optional: bool,
    /// A model weight: the executor supplies it through `prepare_weight`,
    /// so a backend may hold it in its own layout.
    pub weight: bool,
}

impl ArgSpec {
    /// The number of dims its shape names, or `None` for any rank (`[...]`,
    /// `[...,H]`).
    pub fn rank(&self) -> Option<usize> {
        let dims = self.shape.split(' ').next()?.trim_matches(['[', ']']);
        (!dims.contains("...")).then(|| dims.split(',').count())
    }
}

/// One op of the catalogue.
#[derive(Clone, Debug, Serialize)]
pub struct OpSpec {
    /// Which op.
    pub kind: OpKind,
    /// Its name.
    pub name: &'static str,
    /// What it computes.
    pub summary: &'static str,
    /// Its parameters, `name: meaning`.
    pub params: Vec<&'static str>,
    /// Its inputs, in order.
    pub inputs: Vec<ArgSpec>,
    /// Its outputs, in order.
    pub outputs: Vec<ArgSpec>,
}

fn arg(name: &'static str, shape: &'static str, dtypes: &[DType]) -> ArgSpec {
    ArgSpec {
        name,
        shape,
        dtypes: dtypes.to_vec(),
        optional: false,
        weight: false,
    }
}

/// An input that is a model weight (see [`ArgSpec::weight`]).
fn weight(name: &'static str, shape: &'static str, dtypes: &[DType]) -> ArgSpec {
    ArgSpec {
        weight: true,
        ..arg(name, shape, dtypes)
    }
}

/// The summary, parameters, inputs and outputs of an op.
type Parts = (&'static str, Vec<&'static str>, Vec<ArgSpec>, Vec<ArgSpec>);

/// The spec of one op.
pub fn spec(kind: OpKind) -> OpSpec {
    let (summary, params, inputs, outputs) = match kind {
        OpKind::GetRows | OpKind::MatMul | OpKind::BatchedMatMul => products(kind),
        OpKind::RmsNorm | OpKind::LayerNorm => norms(kind),
        OpKind::Rope | OpKind::Attention | OpKind::Softmax => attention_ops(kind),
        OpKind::SwiGlu | OpKind::Silu | OpKind::Gelu => activations(kind),
        OpKind::Add | OpKind::Mul | OpKind::Scale => elementwise(kind),
        OpKind::Cast | OpKind::Quantize => conversions(kind),
        OpKind::KvWrite | OpKind::Argmax => decode_ops(kind),
        OpKind::MatMulId | OpKind::MoeSelect | OpKind::MoeWeights => experts(kind),
    };
    OpSpec {
        kind,
        name: kind.name(),
        summary,
        params,
        inputs,
        outputs,
    }
}

/// The parts of the matrix products and of the embedding lookup (weights read alike).
fn products(kind: OpKind) -> Parts {
    use DType::*;
    let fl = &DType::FLOATS;
    let wt = &DType::WEIGHTS;
    match kind {
        OpKind::GetRows => (
            "out[i] = table[ids[i]] (embedding lookup, dequantizing rows)",
            vec![],
            vec![weight("table", "[V,H]", wt), arg("ids", "[N]", &[I32])],
            vec![arg("out", "[N,H]", fl)],
        ),
        OpKind::MatMul => (
            "y = x·Wᵀ (+ bias); W in any weight dtype",
            vec!["bias: whether a bias input follows"],
            vec![
                arg("x", "[M,K]", fl),
                weight("w", "[N,K]", wt),
                ArgSpec {
                    optional: true,
                    ..arg("bias", "[N]", fl)
                },
            ],
            vec![arg("y", "[M,N]", fl)],
        ),
        OpKind::BatchedMatMul => (
            "out[b] = a[b]·b[b] (views make transposes free)",
            vec![],
            vec![arg("a", "[B,M,K]", fl), arg("b", "[B,K,N]", fl)],
            vec![arg("out", "[B,M,N]", fl)],
        ),
        other => unreachable!("{other:?} is not a product"),
    }
}

/// The parts of the normalizations over the last dim.
fn norms(kind: OpKind) -> Parts {
    let fl = &DType::FLOATS;
    match kind {
        OpKind::RmsNorm => (
            "y = w * cast_back(x * rsqrt(mean(x²) + eps)) over the last dim",
            vec!["eps"],
            vec![arg("x", "[...,H]", fl), arg("weight", "[H]", fl)],
            vec![arg("y", "[...,H]", fl)],
        ),
        OpKind::LayerNorm => (
            "y = (x - mean) * rsqrt(var + eps) * w + b over the last dim",
            vec!["eps"],
            vec![
                arg("x", "[...,H]", fl),
                arg("weight", "[H]", fl),
                arg("bias", "[H]", fl),
            ],
            vec![arg("y", "[...,H]", fl)],
        ),
        other => unreachable!("{other:?} is not a norm"),
    }
}

/// The parts of attention and of the ops it is made of (rotary embedding, softmax).
fn attention_ops(kind: OpKind) -> Parts {
    use DType::*;
    let fl = &DType::FLOATS;
    match kind {
        OpKind::Rope => (
            "rotary embedding of the first rot dims of each head at explicit positions",
            vec!["rot: rotated dims (even)", "theta: frequency base", "mode: interleaved (GLM) | neox"],
            vec![arg("x", "[T,heads,D]", fl), arg("positions", "[T]", &[I32])],
            vec![arg("out", "[T,heads,D]", fl)],
        ),
        OpKind::Attention => (
            "softmax(scale·q·kᵀ, causal) · v with grouped KV heads; f32 softmax; query t at position S-T+t",
            vec!["scale", "causal"],
            vec![arg("q", "[T,n_heads,D]", fl), arg("k", "[S,n_kv_heads,D]", fl), arg("v", "[S,n_kv_heads,D]", fl)],
            vec![arg("out", "[T,n_heads,D]", fl)],
        ),
        OpKind::Softmax => (
            "row softmax of x·scale; causal masks column j > i + N - M",
            vec!["scale", "causal"],
            vec![arg("x", "[M,N]", fl)],
            vec![arg("out", "[M,N]", fl)],
        ),
        other => unreachable!("{other:?} is not an attention op"),
    }
}

/// The parts of the feed-forward block's activations.
fn activations(kind: OpKind) -> Parts {
    let fl = &DType::FLOATS;
    match kind {
        OpKind::SwiGlu => (
            "silu(gate) * up on a fused [gate | up] input",
            vec![],
            vec![arg("x", "[...,2F]", fl)],
            vec![arg("out", "[...,F]", fl)],
        ),
        OpKind::Silu => (
            "x * sigmoid(x)",
            vec![],
            vec![arg("x", "[...]", fl)],
            vec![arg("out", "[...]", fl)],
        ),
        OpKind::Gelu => (
            "0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))",
            vec![],
            vec![arg("x", "[...]", fl)],
            vec![arg("out", "[...]", fl)],
        ),
        other => unreachable!("{other:?} is not an activation"),
    }
}

/// The parts of the elementwise arithmetic.
fn elementwise(kind: OpKind) -> Parts {
    let fl = &DType::FLOATS;
    match kind {
        OpKind::Add => (
            "a + b, b broadcast where its dims are 1",
            vec![],
            vec![arg("a", "[...]", fl), arg("b", "[...] or 1s", fl)],
            vec![arg("out", "[...]", fl)],
        ),
        OpKind::Mul => (
            "a * b, b broadcast where its dims are 1",
            vec![],
            vec![arg("a", "[...]", fl), arg("b", "[...] or 1s", fl)],
            vec![arg("out", "[...]", fl)],
        ),
        OpKind::Scale => (
            "x * factor",
            vec!["factor"],
            vec![arg("x", "[...]", fl)],
            vec![arg("out", "[...]", fl)],
        ),
        other => unreachable!("{other:?} is not elementwise arithmetic"),
    }
}

/// The parts of the dtype conversions.
fn conversions(kind: OpKind) -> Parts {
    use DType::*;
    let fl = &DType::FLOATS;
    let wt = &DType::WEIGHTS;
    match kind {
        OpKind::Cast => (
            "convert between f32/f16/bf16 (round to nearest even), dequantize Q8_0/Q4_0",
            vec![],
            vec![arg("x", "[...]", wt)],
            vec![arg("out", "[...]", fl)],
        ),
        OpKind::Quantize => (
            "quantize rows to Q8_0/Q4_0 blocks with ggml's rounding",
            vec![],
            vec![arg("x", "[...,K]", fl)],
            vec![arg("out", "[...,K]", &[Q8_0, Q4_0])],
        ),
        other => unreachable!("{other:?} is not a conversion"),
    }
}

/// The parts of the decode step's cache write and token choice.
fn decode_ops(kind: OpKind) -> Parts {
    use DType::*;
    let fl = &DType::FLOATS;
    match kind {
        OpKind::KvWrite => (
            "cache[positions[t]] = rows[t]; other cache rows untouched",
            vec![],
            vec![
                arg("rows", "[T,kv_heads,D]", fl),
                arg("positions", "[T]", &[I32]),
            ],
            vec![arg("cache", "[C,kv_heads,D]", fl)],
        ),
        OpKind::Argmax => (
            "index of each row's largest value (first on ties; NaN or inf is an error)",
            vec![],
            vec![arg("x", "[M,N]", fl)],
            vec![arg("out", "[M]", &[I32])],
        ),
        other => unreachable!("{other:?} is not a decode op"),
    }
}

/// The parts of the mixture-of-experts ops: routing and the expert product.
fn experts(kind: OpKind) -> Parts {
    use DType::*;
    let fl = &DType::FLOATS;
    let wt = &DType::WEIGHTS;
    match kind {
        OpKind::MatMulId => (
            "out[t,j] = x[t, j or 0]·W[ids[t,j]]ᵀ: rows times the experts they were routed to (mul_mat_id)",
            vec![],
            vec![
                arg("x", "[T,X,K] (X = 1 or k)", fl),
                weight("w", "[E,N,K]", wt),
                arg("ids", "[T,k]", &[I32]),
            ],
            vec![arg("out", "[T,k,N]", fl)],
        ),
        OpKind::MoeSelect => (
            "top_k experts on sigmoid(logits) + bias in f32, group-limited (n_group, topk_group); ascending ids, lowest index on ties",
            vec!["top_k", "n_group: equal groups of experts", "topk_group: groups kept"],
            vec![arg("logits", "[T,E]", &[F32]), weight("bias", "[E]", &[F32])],
            vec![arg("ids", "[T,top_k]", &[I32])],
        ),
        OpKind::MoeWeights => (
            "sigmoid(logits[ids]) in f32, divided by their sum + 1e-20 if normalize, times scale",
            vec!["normalize", "scale: routed scaling factor"],
            vec![arg("logits", "[T,E]", &[F32]), arg("ids", "[T,k]", &[I32])],
            vec![arg("weights", "[T,k]", &[F32])],
        ),
        other => unreachable!("{other:?} is not an expert op"),
    }
}

/// The whole catalogue, in order.
pub fn catalogue() -> Vec<OpSpec> {
    OpKind::ALL.into_iter().map(spec).collect()
}

/// The spec of one op, built once per process: validation reads it for
/// every op executed, and building it allocates.
pub fn spec_ref(kind: OpKind) -> &'static OpSpec {
    static CATALOGUE: std::sync::OnceLock<Vec<OpSpec>> = std::sync::OnceLock::new();
    let all = CATALOGUE.get_or_init(catalogue);
    // `catalogue` lists every kind in `OpKind::ALL` order (tested below).
    &all[OpKind::ALL
        .iter()
        .position(|k| *k == kind)
        .unwrap_or_default()]
}

/// An op of `kind` with typical GLM parameters (for examples and tests).
pub fn example_op(kind: OpKind) -> Op {
    match kind {
        OpKind::GetRows => Op::GetRows,
        OpKind::MatMul => Op::MatMul { bias: false },
        OpKind::BatchedMatMul => Op::BatchedMatMul,
        OpKind::RmsNorm => Op::RmsNorm { eps: 1e-5 },
        OpKind::LayerNorm => Op::LayerNorm { eps: 1e-5 },
        OpKind::Rope => Op::Rope {
            rot: 64,
            theta: 10000.0,
            mode: RopeMode::Interleaved,
        },
        OpKind::Attention => Op::Attention {
            scale: 128f64.powf(-0.5),
            causal: true,
        },
        OpKind::Softmax => Op::Softmax {
            scale: 1.0,
            causal: false,
        },
        OpKind::SwiGlu => Op::SwiGlu,
        OpKind::Silu => Op::Silu,
        OpKind::Gelu => Op::Gelu,
        OpKind::Add => Op::Add,
        OpKind::Mul => Op::Mul,
        OpKind::Scale => Op::Scale { factor: 0.5 },
        OpKind::Cast => Op::Cast,
        OpKind::Quantize => Op::Quantize,
        OpKind::KvWrite => Op::KvWrite,
        OpKind::Argmax => Op::Argmax,
        OpKind::MatMulId => Op::MatMulId,
        OpKind::MoeSelect => Op::MoeSelect {
            top_k: 8,
            n_group: 1,
            topk_group: 1,
        },
        OpKind::MoeWeights => Op::MoeWeights {
            normalize: true,
            scale: 2.5,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_come_from_the_shape_symbols() {
        let rank = |shape| arg("t", shape, &[]).rank();
        assert_eq!(rank("[M,K]"), Some(2));
        assert_eq!(rank("[T,n_heads,D]"), Some(3));
        assert_eq!(rank("[N]"), Some(1));
        assert_eq!(rank("[...,H]"), None);
        assert_eq!(rank("[...] or 1s"), None);
        let attention = spec(OpKind::Attention);
        assert!(attention.inputs.iter().all(|a| a.rank() == Some(3)));
    }

    #[test]
    fn catalogue_covers_every_op_and_serializes() {
        let cat = catalogue();
        assert_eq!(cat.len(), OpKind::ALL.len());
        let json = serde_json::to_value(&cat).unwrap();
        assert_eq!(json[1]["name"], "mat_mul");
        assert_eq!(json[1]["inputs"][1]["dtypes"][4], "q4_0");
        for s in &cat {
            assert!(!s.inputs.is_empty() && s.outputs.len() == 1, "{}", s.name);
            assert_eq!(example_op(s.kind).kind(), s.kind);
        }
    }

    #[test]
    fn the_cached_spec_is_the_spec_of_that_kind() {
        for kind in OpKind::ALL {
            let cached = spec_ref(kind);
            assert_eq!(cached.kind, kind);
            assert_eq!(cached.inputs.len(), spec(kind).inputs.len());
        }
    }
}
