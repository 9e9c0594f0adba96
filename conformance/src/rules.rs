//! How each op is judged: exact, or every element within the bound that
//! follows from the computation the backend declares (see
//! `glmhal_ops::bounds` for the derivations).

use glmhal_hal::OpKind;
use glmhal_ops::bounds::Rule;
use serde::Serialize;

/// One row of the op table.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct OpRule {
    /// The op.
    pub op: OpKind,
    /// Exact or bounded.
    pub rule: Rule,
    /// What the bound is made of.
    pub why: &'static str,
}

/// Every op, how it is judged and why.
pub const OP_TABLE: [OpRule; 21] = [
    row(OpKind::GetRows, Rule::Exact, "a copy; Q8_0/Q4_0 dequantization d·q is exact in f32, then one rounding to the output"),
    row(OpKind::MatMul, Rule::Bounded, "dot product: products and partial sums rounded in the arithmetic; inputs rounded or activations quantized to blocks if declared; the bias added"),
    row(OpKind::BatchedMatMul, Rule::Bounded, "dot product, as mat_mul"),
    row(OpKind::RmsNorm, Rule::Bounded, "sum of squares, rsqrt, the product; the cast back to the activation dtype may land on either neighbour"),
    row(OpKind::LayerNorm, Rule::Bounded, "mean and variance (one- or two-pass), rsqrt, products and the bias"),
    row(OpKind::Rope, Rule::Bounded, "the angle pos·θ^(−2i/rot) (its relative error grows with |ln θ^(−2i/rot)|), sin and cos, two products and a sum"),
    row(OpKind::Attention, Rule::Bounded, "score dot products, exp (with online rescaling), the sum of weights, the weighted sum of values"),
    row(OpKind::Softmax, Rule::Bounded, "the scaled input, exp, the sum and the division"),
    row(OpKind::SwiGlu, Rule::Bounded, "exp, a sum, a division, two products"),
    row(OpKind::Silu, Rule::Bounded, "exp, a sum, a division, a product"),
    row(OpKind::Gelu, Rule::Bounded, "the cubic, tanh, 1 + tanh (cancellation near −1), two products"),
    row(OpKind::Add, Rule::Bounded, "correctly rounded: half an ulp of the output (exact)"),
    row(OpKind::Mul, Rule::Bounded, "correctly rounded: half an ulp of the output (exact)"),
    row(OpKind::Scale, Rule::Bounded, "correctly rounded, and the factor's own rounding"),
    row(OpKind::Cast, Rule::Exact, "round to nearest even is fully specified"),
    row(OpKind::Quantize, Rule::Bounded, "ggml's rounding; one step only where the scaled value is within f32 rounding of a tie"),
    row(OpKind::KvWrite, Rule::Exact, "a copy with round to nearest even"),
    row(OpKind::Argmax, Rule::Exact, "first index on ties"),
    row(OpKind::MatMulId, Rule::Bounded, "per output one dot product with the routed expert's row, as mat_mul"),
    row(OpKind::MoeSelect, Rule::Exact, "lowest index on ties; cases decide only between scores farther apart than the declared sigmoid and add can blur, or computed from identical inputs"),
    row(OpKind::MoeWeights, Rule::Bounded, "sigmoid (exp, a sum, a division), the sum of the chosen, a division and the scaling"),
];

const fn row(op: OpKind, rule: Rule, why: &'static str) -> OpRule {
    OpRule { op, rule, why }
}

/// The table as Markdown, as `docs/CONFORMANCE.md` shows it.
pub fn markdown_table() -> String {
    let mut s = String::from("| op | rule | what the bound is made of |\n|---|---|---|\n");
    for r in OP_TABLE {
        s.push_str(&format!("| {} | {} | {} |\n", r.op, r.rule.name(), r.why));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use glmhal_ops::bounds::rule;

    #[test]
    fn table_covers_every_op_once_and_agrees_with_the_bounds() {
        for k in OpKind::ALL {
            let rows: Vec<&OpRule> = OP_TABLE.iter().filter(|r| r.op == k).collect();
            assert_eq!(rows.len(), 1, "{k}");
            let example = glmhal_ops::example_op(k);
            assert_eq!(rows[0].rule, rule(&example), "{k}");
        }
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
