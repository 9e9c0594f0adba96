//! The case list: every op × dtype × shape the suite runs.
//!
//! Shapes mix odd sizes (1, 5, 7, 13, 33, 127, 4097 where the format allows),
//! sizes that are not multiples of tiles or blocks, large ones, non-contiguous
//! views (padded rows, slices of a fused qkv row, transposes, offsets) and
//! GLM's real shapes (head_dim 128, rot 64, 16 query heads over 2 KV heads,
//! contexts up to 4096). Inputs are uniform in [-1, 1] unless a case says
//! otherwise; "large-magnitude" cases would overflow f16 arithmetic.

mod attention;
mod convert;
mod elementwise;
pub(crate) mod experts;
mod linear;
mod norm;
mod reduce;

use glmhal_hal::{DType, Op};

use crate::case::{Case, Fill, TensorSpec};

/// Every case, in catalogue order.
pub fn all_cases() -> Vec<Case> {
    let mut cases = Vec::new();
    linear::get_rows(&mut cases);
    linear::mat_mul(&mut cases);
    linear::batched_mat_mul(&mut cases);
    norm::rms_norm(&mut cases);
    norm::layer_norm(&mut cases);
    attention::rope(&mut cases);
    attention::attention(&mut cases);
    reduce::softmax(&mut cases);
    elementwise::activations(&mut cases);
    elementwise::binary(&mut cases);
    convert::cast(&mut cases);
    convert::quantize(&mut cases);
    attention::kv_write(&mut cases);
    reduce::argmax(&mut cases);
    experts::mat_mul_id(&mut cases);
    experts::moe_select(&mut cases);
    experts::moe_weights(&mut cases);
    cases
}

/// Uniform in [-1, 1].
pub(crate) fn unit() -> Fill {
    Fill::Uniform(1.0)
}

/// A packed tensor filled uniform in [-1, 1].
pub(crate) fn dense(dtype: DType, shape: &[usize]) -> TensorSpec {
    TensorSpec::contiguous(dtype, shape, unit())
}

/// Adds a case whose id is derived from the op, its parameters, the tensors and a tag.
pub(crate) fn push(
    cases: &mut Vec<Case>,
    op: Op,
    inputs: Vec<TensorSpec>,
    output: TensorSpec,
    tag: &str,
) {
    let ins: Vec<String> = inputs.iter().map(|t| t.desc.describe()).collect();
    let mut id = format!(
        "{}{} {} -> {}",
        op.name(),
        params(&op),
        ins.join(", "),
        output.desc.describe()
    );
    if !tag.is_empty() {
        id.push_str(&format!(" ({tag})"));
    }
    cases.push(Case {
        id,
        op,
        inputs,
        outputs: vec![output],
        large: tag.contains("large-shape"),
    });
}

/// `{k=v,...}` of an op's parameters, empty when it has none.
fn params(op: &Op) -> String {
    let value = serde_json::to_value(op).unwrap_or_default();
    let fields: Vec<String> = value
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(k, _)| k.as_str() != "op")
                .map(|(k, v)| format!("{k}={}", v.to_string().trim_matches('"')))
                .collect()
        })
        .unwrap_or_default();
    if fields.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", fields.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use glmhal_hal::OpKind;
    use std::collections::HashSet;

    #[test]
    fn every_op_has_cases_and_ids_are_unique() {
        let cases = all_cases();
        let ids: HashSet<&str> = cases.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids.len(), cases.len(), "duplicate case ids");
        for kind in OpKind::ALL {
            let n = cases.iter().filter(|c| c.kind() == kind).count();
            assert!(n >= 4, "{kind} has only {n} cases");
        }
        for c in &cases {
            let ins: Vec<_> = c.inputs.iter().map(|t| t.desc.clone()).collect();
            let outs: Vec<_> = c.outputs.iter().map(|t| t.desc.clone()).collect();
            glmhal_ops::validate(&c.op, &ins, &outs).unwrap_or_else(|e| panic!("{}: {e}", c.id));
            for t in c.inputs.iter().chain(&c.outputs) {
                t.desc
                    .validate(t.storage)
                    .unwrap_or_else(|e| panic!("{}: {e}", c.id));
            }
        }
    }

    #[test]
    fn cases_cover_required_dtypes_and_layouts() {
        let cases = all_cases();
        let has = |k: OpKind, d: DType| {
            cases
                .iter()
                .any(|c| c.kind() == k && c.dtypes().contains(&d))
        };
        for w in DType::WEIGHTS {
            assert!(has(OpKind::MatMul, w) && has(OpKind::GetRows, w), "{w}");
        }
        for k in OpKind::ALL {
            assert!(
                cases
                    .iter()
                    .any(|c| c.kind() == k && c.inputs.iter().any(|t| !t.desc.is_contiguous())),
                "{k} has no non-contiguous case"
            );
        }
        assert!(cases
            .iter()
            .any(|c| c.id.starts_with("mat_mul") && c.id.contains("f32[64,2048]")));
        assert!(cases
            .iter()
            .any(|c| c.id.starts_with("mat_mul") && c.id.contains("[4096,4096]")));
        assert!(cases
            .iter()
            .any(|c| c.id.starts_with("attention") && c.id.contains("[4096,2,128]")));
    }
}
