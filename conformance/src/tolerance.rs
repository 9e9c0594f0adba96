//! The thresholds a backend must meet, per op and dtype.
//!
//! Error metric: NMSE = Σ(ref − out)² / Σ ref². A case passes when its NMSE is
//! at most the threshold, it has no NaN, and every infinity in the reference
//! is the same infinity in the output. "Exact" ops must match bit for bit
//! after decoding. The starting points are ggml's `test-backend-ops`; the
//! dtype floors leave room for a backend that computes in the precision of
//! its lowest-precision operand, and no more.

use glmhal_hal::{DType, OpKind};
use serde::Serialize;

/// What a case must meet.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", content = "nmse", rename_all = "snake_case")]
pub enum Tolerance {
    /// Decoded values identical (integer outputs, copies, conversions).
    Exact,
    /// NMSE at most this.
    Nmse(f64),
}

/// One row of the op table.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct OpTolerance {
    /// The op.
    pub op: OpKind,
    /// Its base threshold with f32 tensors.
    pub tolerance: Tolerance,
    /// Where the number comes from.
    pub why: &'static str,
}

/// Per-op thresholds with every tensor in f32.
pub const OP_TABLE: [OpTolerance; 18] = [
    OpTolerance {
        op: OpKind::GetRows,
        tolerance: Tolerance::Exact,
        why: "a copy; dequantization d·q is exact in f32",
    },
    OpTolerance {
        op: OpKind::MatMul,
        tolerance: Tolerance::Nmse(5e-4),
        why: "ggml mul_mat; with Q8_0/Q4_0 weights, beyond the bound of int8 activation rounding",
    },
    OpTolerance {
        op: OpKind::BatchedMatMul,
        tolerance: Tolerance::Nmse(5e-4),
        why: "ggml mul_mat",
    },
    OpTolerance {
        op: OpKind::RmsNorm,
        tolerance: Tolerance::Nmse(1e-7),
        why: "ggml default",
    },
    OpTolerance {
        op: OpKind::LayerNorm,
        tolerance: Tolerance::Nmse(1e-7),
        why: "ggml default",
    },
    OpTolerance {
        op: OpKind::Rope,
        tolerance: Tolerance::Nmse(1e-6),
        why: "ggml default, widened for f32 angles at positions up to 4096",
    },
    OpTolerance {
        op: OpKind::Attention,
        tolerance: Tolerance::Nmse(5e-4),
        why: "ggml flash_attn_ext",
    },
    OpTolerance {
        op: OpKind::Softmax,
        tolerance: Tolerance::Nmse(1e-6),
        why: "ggml soft_max",
    },
    OpTolerance {
        op: OpKind::SwiGlu,
        tolerance: Tolerance::Nmse(1e-7),
        why: "ggml default",
    },
    OpTolerance {
        op: OpKind::Silu,
        tolerance: Tolerance::Nmse(1e-7),
        why: "ggml default",
    },
    OpTolerance {
        op: OpKind::Gelu,
        tolerance: Tolerance::Nmse(1e-7),
        why: "ggml default",
    },
    OpTolerance {
        op: OpKind::Add,
        tolerance: Tolerance::Nmse(1e-7),
        why: "ggml default",
    },
    OpTolerance {
        op: OpKind::Mul,
        tolerance: Tolerance::Nmse(1e-7),
        why: "ggml default",
    },
    OpTolerance {
        op: OpKind::Scale,
        tolerance: Tolerance::Nmse(1e-7),
        why: "ggml default",
    },
    OpTolerance {
        op: OpKind::Cast,
        tolerance: Tolerance::Exact,
        why: "round to nearest even is fully specified",
    },
    OpTolerance {
        op: OpKind::Quantize,
        tolerance: Tolerance::Nmse(1e-6),
        why: "ggml's rounding; allows a rare one-step flip at an exact .5 tie",
    },
    OpTolerance {
        op: OpKind::KvWrite,
        tolerance: Tolerance::Exact,
        why: "a copy with round to nearest even",
    },
    OpTolerance {
        op: OpKind::Argmax,
        tolerance: Tolerance::Exact,
        why: "ggml argmax; first index on ties",
    },
];

/// Lowest NMSE threshold a case with a tensor of `dtype` gets: a backend may
/// compute in that dtype's precision (one rounding per element).
pub fn dtype_floor(dtype: DType) -> f64 {
    match dtype {
        DType::F16 => 1e-6,
        DType::Bf16 => 5e-5,
        DType::Q4_0 => 1e-5,
        _ => 0.0,
    }
}

/// The threshold for one case: the op's, widened to the floor of its
/// lowest-precision float tensor. Exact ops stay exact.
pub fn for_case(op: OpKind, dtypes: &[DType]) -> Tolerance {
    let base = OP_TABLE
        .iter()
        .find(|r| r.op == op)
        .map_or(Tolerance::Nmse(1e-7), |r| r.tolerance);
    match base {
        Tolerance::Exact => Tolerance::Exact,
        Tolerance::Nmse(t) => {
            let floor = dtypes.iter().map(|d| dtype_floor(*d)).fold(0.0, f64::max);
            Tolerance::Nmse(t.max(floor))
        }
    }
}

/// The table as Markdown, as `docs/CONFORMANCE.md` shows it.
pub fn markdown_table() -> String {
    let mut s = String::from("| op | threshold (all f32) | source |\n|---|---|---|\n");
    for r in OP_TABLE {
        let t = match r.tolerance {
            Tolerance::Exact => "exact".to_string(),
            Tolerance::Nmse(x) => format!("NMSE ≤ {x:e}"),
        };
        s.push_str(&format!("| {} | {t} | {} |\n", r.op, r.why));
    }
    s.push_str("\n| lowest-precision tensor | NMSE floor |\n|---|---|\n");
    for d in [DType::F16, DType::Bf16, DType::Q4_0] {
        s.push_str(&format!("| {d} | {:e} |\n", dtype_floor(d)));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_covers_every_op_once() {
        for k in OpKind::ALL {
            assert_eq!(OP_TABLE.iter().filter(|r| r.op == k).count(), 1, "{k}");
        }
    }

    #[test]
    fn floors_widen_but_never_loosen_exact_ops() {
        assert_eq!(for_case(OpKind::Add, &[DType::F32]), Tolerance::Nmse(1e-7));
        assert_eq!(
            for_case(OpKind::Add, &[DType::F32, DType::Bf16]),
            Tolerance::Nmse(5e-5)
        );
        assert_eq!(
            for_case(OpKind::MatMul, &[DType::F16]),
            Tolerance::Nmse(5e-4)
        );
        assert_eq!(for_case(OpKind::Cast, &[DType::Bf16]), Tolerance::Exact);
    }

    #[test]
    fn docs_show_the_table_in_code() {
        let doc = include_str!("../../docs/CONFORMANCE.md");
        assert!(
            doc.contains(&markdown_table()),
            "docs/CONFORMANCE.md is out of date; paste in:\n{}",
            markdown_table()
        );
    }
}
