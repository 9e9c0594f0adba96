//! The ops a backend executes, as plain data.
//!
//! This is the vocabulary the [`crate::Backend`] trait speaks. What each op
//! takes (inputs, dtypes, shapes), how it is checked and what it computes is
//! the op catalogue in the `glmhal-ops` crate.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::HalError;

/// How rope pairs up the rotated dimensions of a head.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RopeMode {
    /// GLM's (GPT-J style) mode: dims `2i` and `2i+1` form a pair.
    Interleaved,
    /// NeoX half-split mode: dims `i` and `i + rot/2` form a pair.
    Neox,
}

impl RopeMode {
    /// The two dims of pair `i` (for `i < rot / 2`) that rotate together.
    pub fn pair(self, i: usize, rot: usize) -> (usize, usize) {
        match self {
            RopeMode::Interleaved => (2 * i, 2 * i + 1),
            RopeMode::Neox => (i, i + rot / 2),
        }
    }
}

/// One op with its parameters. Tensors are passed beside it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    /// `out[i] = table[ids[i]]`: embedding lookup. Inputs `table [V,H]`, `ids [N] i32`; output `[N,H]`.
    GetRows,
    /// `y = x·Wᵀ (+ bias)`. Inputs `x [M,K]`, `w [N,K]`, optional `bias [N]`; output `[M,N]`.
    MatMul {
        /// Whether a third input holds a bias.
        bias: bool,
    },
    /// `out[b] = a[b]·bm[b]`. Inputs `a [B,M,K]`, `b [B,K,N]` (any strides, so
    /// transposed views are free); output `[B,M,N]`.
    BatchedMatMul,
    /// `y = w * cast_back(x * rsqrt(mean(x²) + eps))` over the last dim. Inputs `x`, `w [H]`.
    RmsNorm {
        /// Added to the mean square.
        eps: f64,
    },
    /// `y = (x - mean) * rsqrt(var + eps) * w + b` over the last dim. Inputs `x`, `w [H]`, `b [H]`.
    LayerNorm {
        /// Added to the variance.
        eps: f64,
    },
    /// Rotary embedding of the first `rot` dims of each head. Inputs `x [T,heads,head_dim]`,
    /// `positions [T] i32`; output like `x`.
    Rope {
        /// Rotated dims per head (even, at most head_dim).
        rot: usize,
        /// Base of the inverse frequencies `theta^(-2i/rot)`.
        theta: f64,
        /// Pairing of the rotated dims.
        mode: RopeMode,
    },
    /// Scaled dot-product attention with grouped KV heads over a cache.
    /// Inputs `q [T,n_heads,D]`, `k [S,n_kv_heads,D]`, `v [S,n_kv_heads,D]`;
    /// output `[T,n_heads,D]`. Query `t` sits at position `S - T + t`.
    Attention {
        /// Multiplies `q` before `q·kᵀ` (usually `D^-0.5`).
        scale: f64,
        /// Whether query `t` sees only keys up to its own position.
        causal: bool,
    },
    /// Row softmax of `x * scale`, optionally causal (row `i` of `M` sees
    /// columns up to `i + N - M`).
    Softmax {
        /// Multiplies the input before the softmax.
        scale: f64,
        /// Mask future columns.
        causal: bool,
    },
    /// `silu(gate) * up` on a fused `[M, 2F]` input (gate first); output `[M, F]`.
    SwiGlu,
    /// `x * sigmoid(x)`.
    Silu,
    /// GELU, tanh approximation.
    Gelu,
    /// `a + b`, `b` broadcast along any dimension where it has size 1.
    Add,
    /// `a * b`, `b` broadcast along any dimension where it has size 1.
    Mul,
    /// `x * factor`.
    Scale {
        /// The factor.
        factor: f64,
    },
    /// Converts between f32, f16 and bf16 (and dequantizes Q8_0/Q4_0).
    Cast,
    /// Quantizes f32 rows into Q8_0 or Q4_0 blocks (ggml's rounding).
    Quantize,
    /// Writes `rows [T,kv_heads,D]` into `cache [C,kv_heads,D]` at `positions [T] i32`.
    /// Inputs `rows`, `positions`; the output is the cache, other rows untouched.
    KvWrite,
    /// Index of the largest value of each row (first on ties), as i32; a row
    /// holding a NaN or an infinity is an error (`HalError::NonFinite`).
    Argmax,
    /// `out[t,j] = x[t, j or 0]·W[ids[t,j]]ᵀ`: each row multiplied by the
    /// experts it was routed to (ggml's `mul_mat_id`). Inputs `x [T,X,K]`
    /// (`X` = 1: one row per token for every expert, or `X` = k), the
    /// stacked experts `w [E,N,K]`, `ids [T,k] i32`; output `[T,k,N]`. An id
    /// outside `[0,E)` is an error at the next wait.
    MatMulId,
    /// The experts a mixture-of-experts router picks. Inputs `logits [T,E]`
    /// and the correction `bias [E]`, both f32; output `ids [T,top_k] i32`
    /// in ascending expert order. Selection is on `sigmoid(logits) + bias`
    /// (f32): the `topk_group` groups (of `n_group` equal groups) with the
    /// largest sum of their two best scores are kept, the other groups'
    /// experts are not candidates, and the `top_k` largest scores win; ties
    /// go to the lowest index, for groups and experts alike.
    MoeSelect {
        /// Experts per token.
        top_k: usize,
        /// Equal groups the experts are split into (1: no grouping).
        n_group: usize,
        /// Groups kept per token.
        topk_group: usize,
    },
    /// The weights of the chosen experts. Inputs `logits [T,E]` f32 and the
    /// chosen `ids [T,k] i32`; output `[T,k]` f32:
    /// `w = sigmoid(logits[ids])` (the scores without the bias), divided by
    /// `Σw + 1e-20` when `normalize`, times `scale`.
    MoeWeights {
        /// Divide by the sum of the chosen scores.
        normalize: bool,
        /// The routed scaling factor.
        scale: f64,
    },
}

/// The name of an op without its parameters, for filters and reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)] // each variant names the `Op` of the same name
pub enum OpKind {
    GetRows,
    MatMul,
    BatchedMatMul,
    RmsNorm,
    LayerNorm,
    Rope,
    Attention,
    Softmax,
    SwiGlu,
    Silu,
    Gelu,
    Add,
    Mul,
    Scale,
    Cast,
    Quantize,
    KvWrite,
    Argmax,
    MatMulId,
    MoeSelect,
    MoeWeights,
}

impl OpKind {
    /// Every op kind, in catalogue order.
    pub const ALL: [OpKind; 21] = [
        OpKind::GetRows,
        OpKind::MatMul,
        OpKind::BatchedMatMul,
        OpKind::RmsNorm,
        OpKind::LayerNorm,
        OpKind::Rope,
        OpKind::Attention,
        OpKind::Softmax,
        OpKind::SwiGlu,
        OpKind::Silu,
        OpKind::Gelu,
        OpKind::Add,
        OpKind::Mul,
        OpKind::Scale,
        OpKind::Cast,
        OpKind::Quantize,
        OpKind::KvWrite,
        OpKind::Argmax,
        OpKind::MatMulId,
        OpKind::MoeSelect,
        OpKind::MoeWeights,
    ];

    /// The snake_case name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            OpKind::GetRows => "get_rows",
            OpKind::MatMul => "mat_mul",
            OpKind::BatchedMatMul => "batched_mat_mul",
            OpKind::RmsNorm => "rms_norm",
            OpKind::LayerNorm => "layer_norm",
            OpKind::Rope => "rope",
            OpKind::Attention => "attention",
            OpKind::Softmax => "softmax",
            OpKind::SwiGlu => "swi_glu",
            OpKind::Silu => "silu",
            OpKind::Gelu => "gelu",
            OpKind::Add => "add",
            OpKind::Mul => "mul",
            OpKind::Scale => "scale",
            OpKind::Cast => "cast",
            OpKind::Quantize => "quantize",
            OpKind::KvWrite => "kv_write",
            OpKind::Argmax => "argmax",
            OpKind::MatMulId => "mat_mul_id",
            OpKind::MoeSelect => "moe_select",
            OpKind::MoeWeights => "moe_weights",
        }
    }
}

impl fmt::Display for OpKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for OpKind {
    type Err = HalError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.to_ascii_lowercase().replace('-', "_");
        let alias = match lower.as_str() {
            "matmul" => "mat_mul",
            "swiglu" => "swi_glu",
            "embedding" => "get_rows",
            "batched_matmul" | "bmm" => "batched_mat_mul",
            "mul_mat_id" | "matmul_id" => "mat_mul_id",
            other => other,
        };
        OpKind::ALL
            .into_iter()
            .find(|k| k.name() == alias)
            .ok_or_else(|| {
                HalError::invalid(
                    "op",
                    format!(
                        "unknown op `{s}`; expected one of {}",
                        OpKind::ALL.map(OpKind::name).join(", ")
                    ),
                )
            })
    }
}

impl Op {
    /// The op's kind (its name without parameters).
    pub fn kind(&self) -> OpKind {
        match self {
            Op::GetRows => OpKind::GetRows,
            Op::MatMul { .. } => OpKind::MatMul,
            Op::BatchedMatMul => OpKind::BatchedMatMul,
            Op::RmsNorm { .. } => OpKind::RmsNorm,
            Op::LayerNorm { .. } => OpKind::LayerNorm,
            Op::Rope { .. } => OpKind::Rope,
            Op::Attention { .. } => OpKind::Attention,
            Op::Softmax { .. } => OpKind::Softmax,
            Op::SwiGlu => OpKind::SwiGlu,
            Op::Silu => OpKind::Silu,
            Op::Gelu => OpKind::Gelu,
            Op::Add => OpKind::Add,
            Op::Mul => OpKind::Mul,
            Op::Scale { .. } => OpKind::Scale,
            Op::Cast => OpKind::Cast,
            Op::Quantize => OpKind::Quantize,
            Op::KvWrite => OpKind::KvWrite,
            Op::Argmax => OpKind::Argmax,
            Op::MatMulId => OpKind::MatMulId,
            Op::MoeSelect { .. } => OpKind::MoeSelect,
            Op::MoeWeights { .. } => OpKind::MoeWeights,
        }
    }

    /// The op's name.
    pub fn name(&self) -> &'static str {
        self.kind().name()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ops_serialize_as_tagged_data() {
        let op = Op::Rope {
            rot: 64,
            theta: 10000.0,
            mode: RopeMode::Interleaved,
        };
        let json = serde_json::to_string(&op).unwrap();
        assert_eq!(
            json,
            r#"{"op":"rope","rot":64,"theta":10000.0,"mode":"interleaved"}"#
        );
        let back: Op = serde_json::from_str(&json).unwrap();
        assert_eq!(back, op);
        assert_eq!(
            serde_json::to_string(&Op::SwiGlu).unwrap(),
            r#"{"op":"swi_glu"}"#
        );
    }

    #[test]
    fn kinds_parse_with_aliases() {
        for k in OpKind::ALL {
            assert_eq!(k.name().parse::<OpKind>().unwrap(), k);
            assert_eq!(
                serde_json::to_string(&k).unwrap(),
                format!("\"{}\"", k.name())
            );
        }
        assert_eq!("matmul".parse::<OpKind>().unwrap(), OpKind::MatMul);
        assert!("conv2d".parse::<OpKind>().is_err());
    }
}
